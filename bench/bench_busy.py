"""fit throughput on an idle and on a busy machine: the default thread
setting (with its per-step thread-count tuner) against one thread and
against a fixed thread count (the tuner off, VAEFAST_TUNE_THREADS=0).

    python bench/bench_busy.py [--threads 2] [--repeats 5] [--batches 32 128 1024]

"Busy" means one competitor process running a CPU-bound busy loop beside
the benchmark for the whole measurement. Each configuration runs in its own
fresh interpreter (the tuner switch is read at start-up); configurations
are interleaved round after round and medians reported, because timings on
a shared machine are noisy. Check `uptime` first: the idle figures mean
something only when the load average is well below the core count.

Targets (docs/threads.md): busy: default >= 0.90 x one thread; idle:
default >= 0.95 x the fixed thread count.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

MODEL = dict(hidden=(400,), latent_dim=20)
D = 784

_ONE_RUN = """
import json, sys, time
import numpy as np
import vaefast
threads, batch, rows = {threads}, {batch}, {rows}
vaefast.set_num_threads(threads)
X = (np.random.default_rng(0).random((rows, {D})) < 0.3).astype(np.float32)
m = vaefast.VAE({D}, hidden={hidden}, latent_dim={latent}, seed=0)
m.fit(X[:4 * batch], epochs=1, batch_size=batch)  # warm-up: workspace, pages
t = time.perf_counter()
m.fit(X, epochs=1, batch_size=batch)
print(json.dumps(rows / (time.perf_counter() - t)))
"""


def rows_for(batch):
    return {32: 8192, 128: 16384, 1024: 32768}.get(batch, 16384)


def one_run(threads, batch, tuned):
    env = dict(os.environ)
    env.pop("VAEFAST_TUNE_THREADS", None)
    if not tuned:
        env["VAEFAST_TUNE_THREADS"] = "0"
    code = _ONE_RUN.format(threads=threads, batch=batch, rows=rows_for(batch), D=D,
                           hidden=MODEL["hidden"], latent=MODEL["latent_dim"])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, timeout=600)
    return json.loads(out.stdout)


def start_competitor():
    """One CPU-bound process: a pure-Python busy loop."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def measure(threads, batches, repeats):
    configs = {"1 thread": (1, True), "default": (threads, True),
               f"{threads} fixed": (threads, False)}
    results = {}
    for busy in (False, True):
        competitor = start_competitor() if busy else None
        try:
            for batch in batches:
                samples = {name: [] for name in configs}
                for _ in range(repeats):  # interleaved rounds
                    for name, (nt, tuned) in configs.items():
                        samples[name].append(one_run(nt, batch, tuned))
                results[(busy, batch)] = {k: statistics.median(v) for k, v in samples.items()}
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
    return results


def report(results, threads):
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    print(f"{'machine':8} {'batch':>5} {'1 thread':>10} {'default':>10} "
          f"{f'{threads} fixed':>10} {'def/1':>7} {'def/fixed':>9}")
    for (busy, batch), r in sorted(results.items()):
        one, default, fixed = r["1 thread"], r["default"], r[f"{threads} fixed"]
        print(f"{'busy' if busy else 'idle':8} {batch:5d} {one:10.0f} {default:10.0f} "
              f"{fixed:10.0f} {default / one:7.2f} {default / fixed:9.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batches", type=int, nargs="+", default=[32, 128, 1024])
    args = ap.parse_args()
    print(f"samples/s of fit, 784-400-20, medians of {args.repeats} interleaved runs")
    report(measure(args.threads, args.batches, args.repeats), args.threads)


if __name__ == "__main__":
    main()
