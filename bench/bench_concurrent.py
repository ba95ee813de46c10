"""Concurrent inference on one model: Python threads calling encode at once.

    python bench/bench_concurrent.py [--rows 8192] [--threads 2] [--repeats 7]

With vaefast.set_num_threads(1), T Python threads each encode their own
chunk of `rows` rows of one 784-400-20 model (the GIL is released inside
every C call); one thread encoding the T chunks one after another is the
baseline. Reports the speed-up (target: >= 1.8x for 2 threads on 2 idle
cores) with medians over interleaved repeats, and the process CPU time per
row of both, which shows whether the threads ran in parallel or waited.
"""

import argparse
import os
import statistics
import threading
import time

import numpy as np

import vaefast


def run_serial(model, chunks):
    for c in chunks:
        model.encode(c)


def run_threads(model, chunks):
    start = threading.Barrier(len(chunks))

    def work(c):
        start.wait()
        model.encode(c)

    threads = [threading.Thread(target=work, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def timed(fn, *args):
    w, c = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - w, time.process_time() - c


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    vaefast.set_num_threads(1)
    rng = np.random.default_rng(0)
    model = vaefast.VAE(784, hidden=(400,), latent_dim=20, seed=0)
    chunks = [(rng.random((args.rows, 784)) < 0.3).astype(np.float32)
              for _ in range(args.threads)]
    run_serial(model, chunks)  # warm-up: per-thread workspaces, pages
    run_threads(model, chunks)
    serial, parallel = [], []
    for _ in range(args.repeats):
        serial.append(timed(run_serial, model, chunks))
        parallel.append(timed(run_threads, model, chunks))
    total = args.rows * args.threads
    ws, cs = (statistics.median(x) for x in zip(*serial))
    wp, cp = (statistics.median(x) for x in zip(*parallel))
    print(f"load average: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    print(f"{args.threads} chunks of {args.rows} rows, vaefast threads 1, "
          f"medians of {args.repeats}")
    print(f"one thread, chunks in turn : {total / ws:10.0f} rows/s  "
          f"(CPU {1e6 * cs / total:.2f} us/row)")
    print(f"{args.threads} Python threads at once : {total / wp:10.0f} rows/s  "
          f"(CPU {1e6 * cp / total:.2f} us/row)")
    print(f"speed-up: {ws / wp:.2f}x")


if __name__ == "__main__":
    main()
