"""The one timing helper of the benchmarks (bench_*.py, report.py).

Machines here are shared and noisy: time many short rounds, report the
median (and the best), and let the caller choose the clock —
time.perf_counter for wall time, time.thread_time for the calling thread's
CPU time (what a one-thread comparison should use on a busy machine).
"""

import time

import numpy as np


def median_seconds(fn, rounds=9, min_time=0.0, clock=time.perf_counter):
    """(median, best) seconds per call of fn() over `rounds` rounds.

    One untimed warm-up call first; each round repeats fn() until it has
    run for at least `min_time` seconds (at least once) and counts the
    average per call, so that short calls are not lost in the clock's
    resolution.
    """
    fn()
    times = []
    for _ in range(rounds):
        n, t0 = 0, clock()
        while True:
            fn()
            n += 1
            elapsed = clock() - t0
            if elapsed >= min_time:
                break
        times.append(elapsed / n)
    return float(np.median(times)), float(min(times))
