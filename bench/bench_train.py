"""Training and encoding throughput: vaefast vs the NumPy reference vs PyTorch.

784-400-20 VAE, Bernoulli likelihood, Adam, random binarised data (N, 784),
every framework on the same thread count.

    pytest bench/bench_train.py --benchmark-only          # pytest-benchmark
    python bench/bench_train.py [--threads 2] [--repeats 5]  # ratio table

The table reports samples/s (medians over repeats), the ratios the targets
are stated in, vaefast's GFLOP/s at 3.28 MFLOP per sample per training step,
and the machine's practical peak: NumPy's 2048³ float32 matmul measured in the
same run.
"""

import argparse
import os
import statistics
import time

import numpy as np
import pytest

import vaefast
from vaefast import reference as R

D, H, Z = 784, 400, 20
FLOP_PER_SAMPLE = 3.28e6  # forward 1.30 + backward 1.98 MFLOP for 784-400-20
BATCHES = (32, 128, 1024)
THREADS = int(os.environ.get("VAEFAST_BENCH_THREADS", "2"))


def make_data(n, seed=0):
    return (np.random.default_rng(seed).random((n, D)) < 0.3).astype(np.float32)


def rows_for(batch):
    """Enough rows for ~0.3 s of work per measurement at the fast end."""
    return {32: 4096, 128: 8192, 1024: 16384}.get(batch, 8192)


# --------------------------------------------------------------- runners
class VaefastTrain:
    def __init__(self, X, batch):
        self.X, self.batch = X, batch
        self.model = vaefast.VAE(D, hidden=(H,), latent_dim=Z, seed=0)

    def __call__(self):
        self.model.fit(self.X, epochs=1, batch_size=self.batch, progress=False)


class NumpyTrain:
    def __init__(self, X, batch):
        self.X, self.batch = X, batch
        self.params = R.init_params(D, (H,), Z, seed=0)
        self.opt = R.Adam(self.params)
        self.rng = np.random.default_rng(0)

    def __call__(self):
        X, b = self.X, self.batch
        order = self.rng.permutation(X.shape[0])
        for s in range(0, X.shape[0], b):
            xb = X[order[s:s + b]]
            eps = self.rng.standard_normal((xb.shape[0], Z)).astype(np.float32)
            self.params, _ = R.train_step(self.params, self.opt, xb, eps)


def torch_model():
    import torch

    class TorchVAE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = torch.nn.Linear(D, H)
            self.head = torch.nn.Linear(H, 2 * Z)
            self.dec = torch.nn.Linear(Z, H)
            self.out = torch.nn.Linear(H, D)

        def encode(self, x):
            mu, lv = self.head(torch.relu(self.enc(x))).chunk(2, dim=1)
            return mu, lv.clamp(-30, 30)

        def forward(self, x):
            mu, lv = self.encode(x)
            z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
            logits = self.out(torch.relu(self.dec(z)))
            recon = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, x, reduction="none").sum(1)
            kl = 0.5 * (lv.exp() + mu * mu - 1 - lv).sum(1)
            return (recon + kl).mean()

    return TorchVAE()


class TorchTrain:
    def __init__(self, X, batch):
        import torch

        torch.set_num_threads(THREADS)
        torch.manual_seed(0)
        self.torch = torch
        self.X, self.batch = torch.from_numpy(X), batch
        self.net = torch_model()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)

    def __call__(self):
        X, b = self.X, self.batch
        order = self.torch.randperm(X.shape[0])
        for s in range(0, X.shape[0], b):
            xb = X[order[s:s + b]]
            self.opt.zero_grad(set_to_none=True)
            loss = self.net(xb)
            loss.backward()
            self.opt.step()


def encoders(X):
    m = vaefast.VAE(D, hidden=(H,), latent_dim=Z, seed=0)
    params = R.init_params(D, (H,), Z, seed=0)
    runs = {"vaefast": lambda: m.encode(X), "numpy": lambda: R.encode(params, X)}
    try:
        import torch

        torch.set_num_threads(THREADS)
        net, Xt = torch_model(), torch.from_numpy(X)

        def run_torch():
            with torch.no_grad():
                net.encode(Xt)

        runs["torch"] = run_torch
    except ImportError:
        pass
    return runs


def peak_gflops(repeats=3):
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    a @ a
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t)
    return 2 * 2048**3 / min(times) / 1e9


# ------------------------------------------------------- pytest-benchmark
FRAMEWORKS = {"vaefast": VaefastTrain, "numpy": NumpyTrain, "torch": TorchTrain}


@pytest.fixture(autouse=True)
def _threads():
    vaefast.set_num_threads(THREADS)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_train_epoch(benchmark, framework, batch):
    if framework == "torch":
        pytest.importorskip("torch")
    X = make_data(rows_for(batch))
    run = FRAMEWORKS[framework](X, batch)
    run()  # warm-up: workspace, packing buffers, torch's allocator
    benchmark.group = f"train batch {batch} ({X.shape[0]} rows/round)"
    benchmark.pedantic(run, rounds=3, iterations=1)


@pytest.mark.parametrize("framework", ["vaefast", "numpy", "torch"])
def test_encode(benchmark, framework):
    if framework == "torch":
        pytest.importorskip("torch")
    X = make_data(8192)
    run = encoders(X)[framework]
    run()
    benchmark.group = "encode 8192 rows"
    benchmark.pedantic(run, rounds=5, iterations=1)


# ------------------------------------------------------------ ratio table
def median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    global THREADS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-numpy", action="store_true", help="skip the slow NumPy baseline")
    args = ap.parse_args()
    THREADS = args.threads
    vaefast.set_num_threads(THREADS)
    frameworks = dict(FRAMEWORKS)
    try:
        import torch  # noqa: F401
    except ImportError:
        del frameworks["torch"]
    if args.no_numpy:
        del frameworks["numpy"]
    peak = peak_gflops()
    print(f"vaefast {vaefast.isa()}, {THREADS} threads; NumPy sgemm 2048³ peak "
          f"{peak:.1f} GFLOP/s")
    print(f"{'batch':>6} " + " ".join(f"{f + ' smp/s':>14}" for f in frameworks)
          + "  vs torch  vs numpy  GFLOP/s  % peak")
    for batch in BATCHES:
        X = make_data(rows_for(batch))
        rate = {}
        for name, cls in frameworks.items():
            reps = args.repeats if name != "numpy" else max(1, args.repeats // 2)
            rate[name] = X.shape[0] / median_time(cls(X, batch), reps)
        gf = rate["vaefast"] * FLOP_PER_SAMPLE / 1e9
        vs_t = rate["vaefast"] / rate["torch"] if "torch" in rate else float("nan")
        vs_n = rate["vaefast"] / rate["numpy"] if "numpy" in rate else float("nan")
        print(f"{batch:>6} " + " ".join(f"{rate[f]:>14.0f}" for f in frameworks)
              + f"  {vs_t:8.2f}  {vs_n:8.2f}  {gf:7.1f}  {100 * gf / peak:5.1f}")
    X = make_data(8192)
    runs = encoders(X)
    enc = {k: X.shape[0] / median_time(v, args.repeats) for k, v in runs.items()}
    print("encode (8192 rows) samples/s: "
          + ", ".join(f"{k} {v:.0f}" for k, v in enc.items())
          + "; vaefast/torch "
          + (f"{enc['vaefast'] / enc['torch']:.2f}" if "torch" in enc else "n/a")
          + f", vaefast/numpy {enc['vaefast'] / enc['numpy']:.2f}")


if __name__ == "__main__":
    main()
