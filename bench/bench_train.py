"""Training, encoding and ELBO throughput: vaefast vs the NumPy reference vs PyTorch.

784-400-20 VAE, Bernoulli likelihood, Adam, random binarised data (N, 784),
every framework on the same thread count.

    pytest bench/bench_train.py --benchmark-only          # pytest-benchmark
    python bench/bench_train.py [--threads 2] [--repeats 5]  # ratio table

The table reports samples/s (medians over repeats), the ratios the targets
are stated in, vaefast's GFLOP/s at 3.28 MFLOP per sample per training step,
and the machine's practical peak: NumPy's 2048³ float32 matmul measured in the
same run.

    python bench/bench_train.py --peak-ratio [--warm-steps 1200]  # % of peak

prints vaefast's training GFLOP/s as a share of the sgemm peak with both
timed in one process, alternating, on the thread's CPU clock (one thread:
a busy machine's other processes then cost less than on the wall clock),
after `--warm-steps` training steps: Adam slows down once dead units' first
moments reach the subnormals (~800 steps at batch 32 with this data), so the
steady state needs a warmed-up model.
"""

import sys
import argparse
import os
import time

import numpy as np
import pytest

import vaefast
from vaefast import reference as R

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/timing.py
from timing import median_seconds  # noqa: E402

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

        def per_sample(self, x):
            """Per-row negative ELBO, one noise draw."""
            mu, lv = self.encode(x)
            z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
            logits = self.out(torch.relu(self.dec(z)))
            recon = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, x, reduction="none").sum(1)
            kl = 0.5 * (lv.exp() + mu * mu - 1 - lv).sum(1)
            return recon + kl

        def forward(self, x):
            return self.per_sample(x).mean()

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


def elbos(X):
    """Per-sample ELBO of X, one noise draw: vaefast's fused core call, the
    NumPy reference's forward + loss, and PyTorch's forward + loss of the
    whole network (inference_mode, TorchVAE.per_sample)."""
    m = vaefast.VAE(D, hidden=(H,), latent_dim=Z, seed=0)
    params = R.init_params(D, (H,), Z, seed=0)

    def run_numpy():
        eps = np.random.default_rng(0).standard_normal((X.shape[0], Z))
        return -R.per_sample_loss(R.forward(params, X, eps), X, "bernoulli", 1.0)[0]

    runs = {"vaefast": lambda: m.elbo(X, seed=0), "numpy": run_numpy}
    try:
        import torch

        torch.set_num_threads(THREADS)
        net, Xt = torch_model(), torch.from_numpy(X)

        def run_torch():
            with torch.inference_mode():
                return -net.per_sample(Xt)

        runs["torch"] = run_torch
    except ImportError:
        pass
    return runs


INFERENCE = {"encode": encoders, "elbo": elbos}


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
@pytest.mark.parametrize("what", list(INFERENCE))
def test_inference(benchmark, what, framework):
    if framework == "torch":
        pytest.importorskip("torch")
    X = make_data(8192)
    run = INFERENCE[what](X)[framework]
    run()
    benchmark.group = f"{what} 8192 rows"
    benchmark.pedantic(run, rounds=5, iterations=1)


# ------------------------------------------------------------ ratio table
def median_time(fn, repeats):
    return median_seconds(fn, repeats)[0]


def warm_up(train, steps):
    """Run whole epochs of `train` until at least `steps` steps are done."""
    while steps > 0:
        train()
        steps -= -(-train.X.shape[0] // train.batch)


def measure_one(kind, batch, repeats, rows=None, warm_steps=0):
    """samples/s of one framework (or the sgemm peak) in this process;
    vaefast's training is timed after `warm_steps` steps (see peak_ratio)."""
    vaefast.set_num_threads(THREADS)
    if kind == "peak":
        return peak_gflops()
    what, _, framework = kind.partition("-")
    if what in INFERENCE:  # "encode-torch", "elbo-vaefast", ...
        X = make_data(8192)
        return X.shape[0] / median_time(INFERENCE[what](X)[framework], repeats)
    X = make_data(rows or rows_for(batch))
    run = FRAMEWORKS[kind](X, batch)
    if kind == "vaefast":
        warm_up(run, warm_steps)
    return X.shape[0] / median_time(run, repeats)


def peak_ratio(batch, repeats, warm_steps, rows=None):
    """(best, median) of vaefast's one-thread training GFLOP/s over the
    sgemm 2048³ GFLOP/s, each timed `repeats` times, alternating, on the
    thread's CPU clock, after warm_steps training steps."""
    vaefast.set_num_threads(1)
    X = make_data(rows or rows_for(batch))
    train = VaefastTrain(X, batch)
    warm_up(train, warm_steps)
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    a @ a
    gemm, step = [], []
    for _ in range(repeats):
        for fn, out, flop in ((lambda: a @ a, gemm, 2 * 2048**3),
                              (train, step, X.shape[0] * FLOP_PER_SAMPLE)):
            t = time.thread_time()
            fn()
            out.append(flop / (time.thread_time() - t) / 1e9)
    ratios = sorted(s / g for s, g in zip(step, gemm))
    return max(step) / max(gemm), ratios[len(ratios) // 2], max(step), max(gemm)


def bench_env(threads):
    """Environment of a benchmark subprocess: every framework on `threads`
    threads, without the OpenBLAS core-type / cache-size overrides a test
    environment may set (OpenBLAS then picks its kernels for this machine)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               VAEFAST_BENCH_THREADS=str(threads))
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    return env


def run_isolated(kind, batch, repeats, threads=None, rows=None, warm_steps=0):
    """Run measure_one in a fresh interpreter: thread pools of one framework
    (OpenBLAS, libgomp, torch) keep spinning after their work and would slow
    the next framework measured in the same process."""
    import subprocess
    import sys

    cmd = [sys.executable, os.path.abspath(__file__), "--one", kind, str(batch), str(repeats),
           str(rows or 0), str(warm_steps)]
    out = subprocess.run(cmd, env=bench_env(THREADS if threads is None else threads),
                         capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.abspath(__file__)))
    return float(out.stdout.strip().splitlines()[-1])


def measure_table(frameworks, repeats, threads=None, batches=BATCHES, rows=None,
                  warm_steps=0):
    """Training samples/s of each framework at each batch size, each number
    from a fresh process (NumPy gets half the repeats: it is the slow one);
    vaefast's after `warm_steps` training steps.

    Returns
    -------
    list of dict
        ``{"batch", "framework", "samples_per_s"}`` records.
    """
    return [{"batch": batch, "framework": f,
             "samples_per_s": run_isolated(f, batch, repeats if f != "numpy"
                                           else max(1, repeats // 2), threads, rows,
                                           warm_steps if f == "vaefast" else 0)}
            for batch in batches for f in frameworks]


def measure_peak_ratios(repeats, warm_steps, batches=BATCHES, rows=None):
    """peak_ratio at each batch size, each in a fresh one-thread process.

    Returns
    -------
    list of dict
        ``{"batch", "best", "median", "train_gflops", "sgemm_gflops",
        "warm_steps"}`` records (best and median: fractions of the peak).
    """
    import subprocess

    records = []
    for batch in batches:
        cmd = [sys.executable, os.path.abspath(__file__), "--ratio-one", str(batch),
               str(repeats), str(warm_steps), str(rows or 0)]
        out = subprocess.run(cmd, env=bench_env(1), capture_output=True, text=True,
                             check=True, cwd=os.path.dirname(os.path.abspath(__file__)))
        best, med, gf, peak = map(float, out.stdout.split())
        records.append(dict(batch=batch, best=best, median=med, train_gflops=gf,
                            sgemm_gflops=peak, warm_steps=warm_steps))
    return records


def main():
    global THREADS
    import sys

    if len(sys.argv) == 7 and sys.argv[1] == "--one":  # kind batch repeats rows warm
        print(measure_one(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                          int(sys.argv[5]) or None, int(sys.argv[6])))
        return
    if len(sys.argv) in (5, 6) and sys.argv[1] == "--ratio-one":  # batch repeats warm [rows]
        rows = int(sys.argv[5]) or None if len(sys.argv) == 6 else None
        print(*peak_ratio(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), rows))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-numpy", action="store_true", help="skip the slow NumPy baseline")
    ap.add_argument("--peak-ratio", action="store_true",
                    help="one thread: training GFLOP/s / sgemm GFLOP/s, in one process per batch")
    ap.add_argument("--warm-steps", type=int, default=1200,
                    help="training steps before --peak-ratio times (default 1200)")
    args = ap.parse_args()
    THREADS = args.threads
    if args.peak_ratio:
        print(f"vaefast {vaefast.isa()}, 1 thread, thread CPU time, after {args.warm_steps} "
              f"steps; % of the same process's NumPy sgemm 2048³")
        print(f"{'batch':>6} {'best %':>7} {'median %':>9} {'train GF/s':>11} {'sgemm GF/s':>11}")
        for r in measure_peak_ratios(args.repeats, args.warm_steps):
            print(f"{r['batch']:>6} {100 * r['best']:7.1f} {100 * r['median']:9.1f} "
                  f"{r['train_gflops']:11.1f} {r['sgemm_gflops']:11.1f}")
        return
    frameworks = list(FRAMEWORKS)
    try:
        import torch  # noqa: F401
    except ImportError:
        frameworks.remove("torch")
    if args.no_numpy:
        frameworks.remove("numpy")
    peak = run_isolated("peak", 0, 3)
    print(f"vaefast {vaefast.isa()}, {THREADS} threads, each number from a fresh process; "
          f"NumPy sgemm 2048³ peak {peak:.1f} GFLOP/s")
    print(f"{'batch':>6} " + " ".join(f"{f + ' smp/s':>14}" for f in frameworks)
          + "  vs torch  vs numpy  GFLOP/s  % peak")
    records = measure_table(frameworks, args.repeats)
    for batch in BATCHES:
        rate = {r["framework"]: r["samples_per_s"] for r in records if r["batch"] == batch}
        gf = rate["vaefast"] * FLOP_PER_SAMPLE / 1e9
        vs_t = rate["vaefast"] / rate["torch"] if "torch" in rate else float("nan")
        vs_n = rate["vaefast"] / rate["numpy"] if "numpy" in rate else float("nan")
        print(f"{batch:>6} " + " ".join(f"{rate[f]:>14.0f}" for f in frameworks)
              + f"  {vs_t:8.2f}  {vs_n:8.2f}  {gf:7.1f}  {100 * gf / peak:5.1f}")
    for what in INFERENCE:
        rate = {f: run_isolated(f"{what}-{f}", 0, args.repeats)
                for f in ("vaefast", "numpy", "torch") if f in frameworks or f == "vaefast"}
        print(f"{what} (8192 rows) samples/s: "
              + ", ".join(f"{k} {v:.0f}" for k, v in rate.items())
              + "; vaefast/torch "
              + (f"{rate['vaefast'] / rate['torch']:.2f}" if "torch" in rate else "n/a")
              + "; vaefast/numpy "
              + (f"{rate['vaefast'] / rate['numpy']:.2f}" if "numpy" in rate else "n/a"))


if __name__ == "__main__":
    main()
