"""The fused GEMM core vs NumPy's OpenBLAS, at the VAE's shapes.

    pytest bench/bench_gemm.py --benchmark-only      # pytest-benchmark suites
    python bench/bench_gemm.py [threads] [--cpu]      # GFLOP/s table

The table gives median and best GFLOP/s of repeated timings. On a shared
machine, where another process can take a core for a whole time slice,
the best is the steadier number; with one thread, --cpu times with the
thread's CPU clock instead of the wall clock, which descheduling does not
inflate (both libraries then run on the calling thread).

Each layer of the 784-400-20 VAE (the head is 400 -> 40 = [mu | logvar])
at batch 32, 128 and 1024: the forward pass against NumPy's unfused
``np.maximum(x @ W + b, 0)``, the raw product against ``x @ W``, and the
two backward products (input gradient with the ReLU mask, weight gradient
with the bias gradient) against their NumPy formulas. The 2048³ SGEMM is
the machine's practical peak. Both sides run with the same thread count
(vaefast.set_num_threads and threadpoolctl for OpenBLAS).
"""

import os
import sys
import time

import numpy as np
import pytest

import vaefast
from vaefast import _core, ops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/timing.py
from timing import median_seconds  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
    threadpool_limits = None

BATCHES = (32, 128, 1024)
LAYERS = ((784, 400), (400, 40), (20, 400), (400, 784))


def make_layer(batch, n_in, n_out, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, n_in), dtype=np.float32)
    W = (rng.standard_normal((n_in, n_out), dtype=np.float32) / np.sqrt(n_in)).astype(np.float32)
    b = rng.standard_normal(n_out, dtype=np.float32)
    dy = rng.standard_normal((batch, n_out), dtype=np.float32)
    return x, W, b, dy


def cases(batch, n_in, n_out):
    """name -> (flops, vaefast callable, NumPy callable)."""
    x, W, b, dy = make_layer(batch, n_in, n_out)
    y = np.empty((batch, n_out), np.float32)
    mask = np.maximum(x, 0)  # a ReLU output feeding this layer
    dx = np.empty((batch, n_in), np.float32)
    dW = np.empty((n_in, n_out), np.float32)
    db = np.empty(n_out, np.float32)
    flops = 2.0 * batch * n_in * n_out
    return {
        "forward": (flops, lambda: ops.linear(x, W, b, "relu", out=y),
                    lambda: np.maximum(x @ W + b, 0)),
        "raw": (flops, lambda: ops.matmul(x, W, out=y), lambda: np.matmul(x, W, out=y)),
        "input_grad": (flops, lambda: _core.gemm_linear_backward_input(dy, W, mask, dx),
                       lambda: (dy @ W.T) * (mask > 0)),
        "weight_grad": (flops, lambda: _core.gemm_linear_backward_weight(x, dy, dW, db, False),
                        lambda: (x.T @ dy, dy.sum(axis=0))),
    }


def square(n=2048):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    return 2.0 * n**3, (lambda: ops.matmul(a, b, out=c)), (lambda: np.matmul(a, b, out=c))


# ------------------------------------------------------ pytest-benchmark
@pytest.fixture(params=[1, 2], ids=lambda n: f"threads{n}")
def threads(request):
    before = vaefast.get_num_threads()
    vaefast.set_num_threads(request.param)
    if threadpool_limits is None:
        yield request.param
    else:
        with threadpool_limits(request.param):
            yield request.param
    vaefast.set_num_threads(before)


@pytest.mark.parametrize("impl", ["vaefast", "numpy"])
@pytest.mark.parametrize("kind", ["forward", "raw", "input_grad", "weight_grad"])
@pytest.mark.parametrize("layer", LAYERS, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: f"b{b}")
def test_layer(benchmark, threads, batch, layer, kind, impl):
    flops, fast, slow = cases(batch, *layer)[kind]
    benchmark.extra_info.update(flops=flops, threads=threads, isa=vaefast.isa())
    benchmark.group = f"{kind} b{batch} {layer[0]}x{layer[1]} t{threads}"
    benchmark(fast if impl == "vaefast" else slow)


@pytest.mark.parametrize("impl", ["vaefast", "numpy"])
def test_square_2048(benchmark, threads, impl):
    flops, fast, slow = square()
    benchmark.extra_info.update(flops=flops, threads=threads, isa=vaefast.isa())
    benchmark.group = f"sgemm 2048 t{threads}"
    benchmark.pedantic(fast if impl == "vaefast" else slow, rounds=5, warmup_rounds=1)


# ------------------------------------------------------------ table mode
def seconds(fn, clock, rounds=9, min_time=0.03):
    """(median, best) seconds per call over `rounds` timed batches."""
    return median_seconds(fn, rounds, min_time, clock)


def measure(threads, batches=BATCHES, layers=LAYERS, square_n=2048, rounds=9,
            square_rounds=5, min_time=0.03):
    """Median seconds of every case, vaefast and NumPy, in this process.

    Returns
    -------
    list of dict
        ``{"batch", "n_in", "n_out", "kind", "flops", "vaefast_s", "numpy_s"}``;
        the square product last, as kind ``"sgemm"`` with batch = n_in = n_out.
    """
    vaefast.set_num_threads(threads)
    if threadpool_limits is not None:
        threadpool_limits(threads)  # stays in force for this process
    out = []
    for batch in batches:
        for layer in layers:
            for kind, (flops, fast, slow) in cases(batch, *layer).items():
                out.append(dict(batch=batch, n_in=layer[0], n_out=layer[1], kind=kind,
                                flops=flops, vaefast_s=seconds(fast, time.perf_counter, rounds, min_time)[0],
                                numpy_s=seconds(slow, time.perf_counter, rounds, min_time)[0]))
    flops, fast, slow = square(square_n)
    out.append(dict(batch=square_n, n_in=square_n, n_out=square_n, kind="sgemm", flops=flops,
                    vaefast_s=seconds(fast, time.perf_counter, square_rounds, min_time)[0],
                    numpy_s=seconds(slow, time.perf_counter, square_rounds, min_time)[0]))
    return out


def table(threads, cpu=False):
    vaefast.set_num_threads(threads)
    if threadpool_limits is not None:
        threadpool_limits(threads)  # stays in force for this process
    if cpu and threads != 1:
        raise SystemExit("--cpu needs 1 thread (it reads the calling thread's CPU clock)")
    clock = time.thread_time if cpu else time.perf_counter
    print(f"# kernel set {vaefast.isa()}, {threads} thread(s), {'CPU' if cpu else 'wall'} time; "
          "GFLOP/s median (best); ratio = NumPy time / vaefast time, medians (bests)")
    print(f"{'batch':>5} {'layer':>9} {'kind':>11} {'vaefast':>14} {'numpy':>14} {'ratio':>12}")

    def row(label, flops, fast, slow, rounds=9):
        (tv, bv), (tn, bn) = seconds(fast, clock, rounds), seconds(slow, clock, rounds)
        print(f"{label} {flops / tv / 1e9:6.1f} ({flops / bv / 1e9:5.1f}) "
              f"{flops / tn / 1e9:6.1f} ({flops / bn / 1e9:5.1f}) {tn / tv:5.2f} ({bn / bv:4.2f})")

    for batch in BATCHES:
        for layer in LAYERS:
            for kind, (flops, fast, slow) in cases(batch, *layer).items():
                row(f"{batch:>5} {layer[0]:>4}x{layer[1]:<4} {kind:>11}", flops, fast, slow)
    flops, fast, slow = square()
    row(f"{'2048³':>15} {'sgemm':>11}", flops, fast, slow, rounds=5)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--cpu"]
    table(int(args[0]) if args else vaefast.get_num_threads(), cpu="--cpu" in sys.argv[1:])
