"""The fused scVI count losses vs the Gaussian loss and the log-mean NB kernel.

    python bench/bench_count_loss.py [threads]

On a 128 × 2000 batch of counts with 90% zeros (issue 23's shape: one
minibatch of a 2,000-gene model), one thread by default, CPU time of the
calling thread (time.thread_time; the machine is shared; with more threads,
wall time: OpenMP's waiting thread spins, so CPU time would mislead),
median of rounds:

- kernel: the binding called with preallocated outputs (what a training
  step would pay: loss and every gradient);
- ops: the public vaefast.ops functions (adds input checks and allocation).

Then a projection of the issue's epoch target (an NB/ZINB epoch at most
1.3× the Gaussian model's): the measured training step of the 2000-128-10
Gaussian model (unit variance; for ZINB the per-sample-variance Gaussian,
whose output layer is 2000 × 2 wide like ZINB's mean and zero-inflation
heads) with its loss kernel's time replaced by the count kernel's.
"""

import os
import sys
import time

import numpy as np

import vaefast
from vaefast import _core, ops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/timing.py
from timing import median_seconds  # noqa: E402

M, N = 128, 2000


def data(seed=0, zeros=0.9):
    rng = np.random.default_rng(seed)
    x = rng.negative_binomial(2.0, 0.4, (M, N)).astype(np.float32)
    x[rng.random((M, N)) < zeros] = 0.0
    rho = rng.normal(0.0, 1.0, (M, N)).astype(np.float32)
    lib = np.maximum(x.sum(1), 1.0).astype(np.float32)
    lt = rng.normal(0.5, 0.5, N).astype(np.float32)
    w = rng.normal(-2.0, 1.0, (M, N)).astype(np.float32)
    return x, rho, lib, lt, w


def kernels(x, rho, lib, lt, w):
    """name -> zero-argument callable running one kernel call."""
    f = np.float32
    loss, g1, g2, g3 = (np.empty(M, f), np.empty((M, N), f), np.empty((M, N), f),
                        np.empty((M, N), f))
    dlt_gene = np.empty((1, N), f)
    lt_row, lt_cell = lt.reshape(1, N), np.tile(lt, (M, 1))
    lv = np.zeros((M, N), f)
    return {
        "gaussian (unit)": lambda: _core.gaussian_loss_into(rho, x, loss, g1, 1.0),
        "gaussian (sample variance)": lambda: _core.gaussian_var_loss_into(
            rho, x, lv, loss, g1, g2, 1.0),
        "negative_binomial (log-mean, existing)": lambda: _core.negbin_loss_into(
            rho, x, lib, lt, loss, g1, g2, 1.0),
        "count poisson": lambda: _core.count_loss_into(
            "poisson", rho, x, lib, None, None, loss, g1, None, None, 1.0),
        "count nb (gene θ)": lambda: _core.count_loss_into(
            "nb", rho, x, lib, lt_row, None, loss, g1, dlt_gene, None, 1.0),
        "count zinb (gene θ)": lambda: _core.count_loss_into(
            "zinb", rho, x, lib, lt_row, w, loss, g1, dlt_gene, g3, 1.0),
        "count zinb (gene-cell θ)": lambda: _core.count_loss_into(
            "zinb", rho, x, lib, lt_cell, w, loss, g1, g2, g3, 1.0),
        "ops.count_loss zinb (gene θ)": lambda: ops.count_loss(x, rho, lib, lt, w, "zinb"),
        "ops.gaussian_loss": lambda: ops.gaussian_loss(rho, x),
    }


def step_seconds(variance, rounds):
    """CPU seconds per training step of the 2000-128-10 Gaussian model."""
    X = np.random.default_rng(1).random((M * 8, N), dtype=np.float32)
    model = vaefast.VAE(N, hidden=(128,), latent_dim=10, likelihood="gaussian",
                        variance=variance, seed=0)
    model.fit(X[:M], epochs=1, batch_size=M, progress=False)
    med, _ = median_seconds(lambda: model.fit(X, epochs=1, batch_size=M, shuffle=False,
                                              progress=False),
                            rounds=rounds, clock=time.thread_time)
    return med / 8


def main(threads=1, rounds=15):
    vaefast.set_num_threads(threads)
    clock = time.thread_time if threads == 1 else time.perf_counter
    x, rho, lib, lt, w = data()
    print(f"vaefast {vaefast.isa()}, {threads} thread(s), {M}×{N} batch, "
          f"{(x == 0).mean():.1%} zeros; {'CPU' if threads == 1 else 'wall'} ms per call, "
          f"median of {rounds} "
          f"(load average {os.getloadavg()[0]:.1f}: a shared machine)")
    times = {}
    for name, fn in kernels(x, rho, lib, lt, w).items():
        times[name], best = median_seconds(fn, rounds=rounds, min_time=0.02, clock=clock)
        print(f"  {name:40s} {1e3 * times[name]:8.3f} ms (best {1e3 * best:.3f})")
    base = times["gaussian (unit)"]
    print("kernel time relative to the Gaussian (unit) loss kernel:")
    for name in ("negative_binomial (log-mean, existing)", "count poisson",
                 "count nb (gene θ)", "count zinb (gene θ)", "count zinb (gene-cell θ)"):
        print(f"  {name:40s} {times[name] / base:6.2f}×")
    if threads == 1:
        unit, sample = step_seconds("unit", 7), step_seconds("sample", 7)
        nb = unit - base + times["count nb (gene θ)"]
        zinb = sample - times["gaussian (sample variance)"] + times["count zinb (gene θ)"]
        print(f"training step, 2000-128-10 Gaussian: unit {1e3 * unit:.2f} ms, "
              f"sample variance {1e3 * sample:.2f} ms")
        print(f"projected NB step   {1e3 * nb:.2f} ms = {nb / unit:.2f}× the Gaussian step")
        print(f"projected ZINB step {1e3 * zinb:.2f} ms = {zinb / unit:.2f}× the Gaussian step "
              "(its second head included)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
