"""Soak: long training, then many tiny calls; resident memory, open files
and threads must stay flat.

    python bench/soak.py [--epochs 200] [--rows 20000] [--calls 100000]
                         [--hidden 400] [--batch 128]

Trains a 784-H-20 VAE for `epochs` epochs on `rows` rows, then makes `calls`
encode calls of one row each. Prints resident memory (VmRSS) after warm-up
(epoch 5), at the end of training and every 10,000 calls, the growth after
warm-up, and the counts of open file descriptors and of threads before and
after. Linux only (/proc/self).
"""

import argparse
import os
import time

import numpy as np

import vaefast


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def os_threads():
    return len(os.listdir("/proc/self/task"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--calls", type=int, default=100000)
    ap.add_argument("--hidden", type=int, default=400)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=5, help="epochs before the baseline")
    args = ap.parse_args()

    X = (np.random.default_rng(0).random((args.rows, 784)) < 0.3).astype(np.float32)
    model = vaefast.VAE(784, hidden=(args.hidden,), latent_dim=20, seed=0)
    fds0, threads0 = open_fds(), os_threads()
    marks = {}

    def record(epoch, logs):
        if epoch + 1 == args.warmup:
            marks["warm"] = rss_mib()
        marks["max_train"] = max(marks.get("max_train", 0.0), rss_mib())

    t0 = time.perf_counter()
    model.fit(X, epochs=args.epochs, batch_size=args.batch, callbacks=[record])
    t_train = time.perf_counter() - t0
    marks["trained"] = rss_mib()
    print(f"threads setting {vaefast.get_num_threads()}, load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"trained {args.epochs} epochs x {args.rows} rows in {t_train:.0f} s; RSS after "
          f"epoch {args.warmup}: {marks['warm']:.1f} MiB, max during training "
          f"{marks['max_train']:.1f} MiB, at the end {marks['trained']:.1f} MiB")

    row = X[:1]
    model.encode(row)
    calls_rss = []
    t0 = time.perf_counter()
    for i in range(1, args.calls + 1):
        model.encode(row)
        if i % 10000 == 0:
            calls_rss.append(rss_mib())
    t_calls = time.perf_counter() - t0
    print(f"{args.calls} one-row encode calls in {t_calls:.1f} s "
          f"({1e6 * t_calls / args.calls:.1f} us each); RSS every 10,000 calls: "
          + ", ".join(f"{r:.1f}" for r in calls_rss) + " MiB")
    end = max([marks["trained"], *calls_rss])
    print(f"RSS growth after warm-up: {end - marks['warm']:+.1f} MiB "
          f"({marks['warm']:.1f} -> {end:.1f} MiB at most)")
    print(f"open fds {fds0} -> {open_fds()}; threads {threads0} -> {os_threads()} "
          f"(OpenMP workers start with the first parallel call)")


if __name__ == "__main__":
    main()
