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
"""

import argparse
import statistics
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


if __name__ == "__main__":
    main()
