"""Training throughput of each model kind relative to the Bernoulli VAE.

784-400-20, batch 128, Adam, one epoch of 4096 rows per measurement, on
Fashion-MNIST-like synthetic data: intensities in [0, 1] for the Bernoulli
and Gaussian models, counts 0..255 (many small) for Poisson and negative
binomial, one-hot labels of 10 classes for the conditional model.

    pytest bench/bench_models.py --benchmark-only         # pytest-benchmark
    python bench/bench_models.py [--threads 1] [--repeats 7]   # ratio table

The table is 1-thread CPU time (time.thread_time) per epoch, medians over
interleaved repeats (every kind once per round), so machine load shifts all
kinds alike; the targets are ratios to Bernoulli.

    python bench/bench_models.py --scvi [--threads 1 2] [--repeats 5]

times an epoch of the single-cell models (issue 23: 2000 genes, 90% zeros,
128 hidden, 10 latent, batch 128) against the Gaussian model on the same
counts, each model in a fresh process.
"""

import argparse
import statistics
import sys
import time

import numpy as np
import pytest

import vaefast

D, H, Z, N, BATCH = 784, 400, 20, 4096, 128
KINDS = {
    "bernoulli": dict(likelihood="bernoulli"),
    "gaussian (unit)": dict(likelihood="gaussian"),
    "gaussian (feature)": dict(likelihood="gaussian", variance="feature"),
    "gaussian (sample)": dict(likelihood="gaussian", variance="sample"),
    "poisson": dict(likelihood="poisson"),
    "negative_binomial": dict(likelihood="negative_binomial"),
    "bernoulli, conditional (C=10)": dict(likelihood="bernoulli", n_conditions=10),
}


def make_inputs(kind, seed=0):
    rng = np.random.default_rng(seed)
    P = rng.random((N, D)).astype(np.float32)
    cfg = KINDS[kind]
    X = (np.floor(P * P * 256).astype(np.float32)
         if cfg["likelihood"] in ("poisson", "negative_binomial") else P)
    c = (np.eye(10, dtype=np.float32)[rng.integers(0, 10, N)]
         if cfg.get("n_conditions") else None)
    return X, c


class Epoch:
    """One training epoch of a model kind (the model persists across calls)."""

    def __init__(self, kind):
        self.X, self.c = make_inputs(kind)
        self.model = vaefast.VAE(D, hidden=(H,), latent_dim=Z, seed=0, **KINDS[kind])

    def __call__(self):
        self.model.fit(self.X, c=self.c, epochs=1, batch_size=BATCH, progress=False)


@pytest.mark.parametrize("kind", list(KINDS))
def test_train_epoch(benchmark, kind):
    run = Epoch(kind)
    run()  # warm-up: workspace, pages
    benchmark.pedantic(run, rounds=3, iterations=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    vaefast.set_num_threads(args.threads)
    runs = {k: Epoch(k) for k in KINDS}
    times = {k: [] for k in KINDS}
    for r in runs.values():
        r()
    for _ in range(args.repeats):
        for k, r in runs.items():
            t = time.thread_time() if args.threads == 1 else time.perf_counter()
            r()
            times[k].append((time.thread_time() if args.threads == 1 else time.perf_counter()) - t)
    base = statistics.median(times["bernoulli"])
    clock = "CPU" if args.threads == 1 else "wall"
    print(f"| model | ms/epoch ({clock}, median of {args.repeats}) | samples/s | ratio to Bernoulli |")
    print("|---|---|---|---|")
    for k, ts in times.items():
        t = statistics.median(ts)
        print(f"| {k} | {t * 1e3:.1f} | {N / t:.0f} | {t / base:.3f} |")


# ---- issue 23: the single-cell models on 90%-zero counts, each run in its
# own process:  python bench/bench_models.py --scvi [--threads 1 2] [--repeats 5]
SC_D, SC_H, SC_Z, SC_N = 2000, 128, 10, 4096
SC_KINDS = {"gaussian": {}, "negative_binomial": {}, "scvi_nb": {}, "zinb": {},
            "scvi_poisson": {}}


def sc_counts(seed=0):
    """SC_N × SC_D counts with 90% zeros (NB(2, 0.4) draws, then 90% zeroed;
    every row keeps a positive total, as the scVI likelihoods need)."""
    rng = np.random.default_rng(seed)
    x = rng.negative_binomial(2.0, 0.4, (SC_N, SC_D)).astype(np.float32)
    x[rng.random(x.shape) < 0.9] = 0.0
    x[:, 0] += 1.0
    return x


def sc_epoch_seconds(kind, threads, repeats):
    """Median seconds of one training epoch inside one fit (the time between
    epoch-end callbacks, so fit's one-off input checks and the warm-up first
    epoch are left out): CPU time of this thread for 1 thread, wall time
    otherwise."""
    vaefast.set_num_threads(threads)
    X = sc_counts()
    m = vaefast.VAE(SC_D, hidden=(SC_H,), latent_dim=SC_Z, seed=0, likelihood=kind)
    clock = time.thread_time if threads == 1 else time.perf_counter
    stamps = []
    m.fit(X, epochs=repeats + 1, batch_size=BATCH, progress=False,
          callbacks=lambda epoch, logs: stamps.append(clock()))
    return statistics.median(np.diff(stamps))


def sc_table(threads_list, repeats):
    import subprocess

    print(f"{SC_N} cells × {SC_D} genes (90% zeros), {SC_D}-{SC_H}-{SC_Z}, batch {BATCH}; "
          f"each model in a fresh process, median of {repeats} epochs of one fit")
    print("| model | threads | ms/epoch | ratio to gaussian |")
    print("|---|---|---|---|")
    for t in threads_list:
        res = {}
        for kind in SC_KINDS:
            out = subprocess.run([sys.executable, __file__, "--scvi-one", kind, "--threads",
                                  str(t), "--repeats", str(repeats)],
                                 capture_output=True, text=True, check=True).stdout
            res[kind] = float(out.split()[-1])
        for kind, sec in res.items():
            print(f"| {kind} | {t} | {sec * 1e3:.0f} | {sec / res['gaussian']:.2f} |")


if __name__ == "__main__":
    if "--scvi" in sys.argv or "--scvi-one" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--scvi", action="store_true")
        ap.add_argument("--scvi-one", choices=list(SC_KINDS))
        ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
        ap.add_argument("--repeats", type=int, default=5)
        a = ap.parse_args()
        if a.scvi_one:
            print(sc_epoch_seconds(a.scvi_one, a.threads[0], a.repeats))
        else:
            sc_table(a.threads, a.repeats)
    else:
        main()
