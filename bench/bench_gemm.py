"""The fused GEMM core vs NumPy's OpenBLAS, at the VAE's shapes.

    pytest bench/bench_gemm.py --benchmark-only      # pytest-benchmark suites
    python bench/bench_gemm.py [threads]              # GFLOP/s table

Each layer of the 784-400-20 VAE (the head is 400 -> 40 = [mu | logvar])
at batch 32, 128 and 1024: the forward pass against NumPy's unfused
``np.maximum(x @ W + b, 0)``, the raw product against ``x @ W``, and the
two backward products (input gradient with the ReLU mask, weight gradient
with the bias gradient) against their NumPy formulas. The 2048³ SGEMM is
the machine's practical peak. Both sides run with the same thread count
(vaefast.set_num_threads and threadpoolctl for OpenBLAS).
"""

import sys
import time

import numpy as np
import pytest

import vaefast
from vaefast import _core, ops

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
def median_seconds(fn, rounds=9, min_time=0.03):
    fn()
    times = []
    for _ in range(rounds):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time:
                break
        times.append(elapsed / n)
    return float(np.median(times))


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
                                flops=flops, vaefast_s=median_seconds(fast, rounds, min_time),
                                numpy_s=median_seconds(slow, rounds, min_time)))
    flops, fast, slow = square(square_n)
    out.append(dict(batch=square_n, n_in=square_n, n_out=square_n, kind="sgemm", flops=flops,
                    vaefast_s=median_seconds(fast, square_rounds, min_time),
                    numpy_s=median_seconds(slow, square_rounds, min_time)))
    return out


def table(threads):
    records = measure(threads)
    print(f"# kernel set {vaefast.isa()}, {threads} thread(s); GFLOP/s (median), ratio = NumPy time / vaefast time")
    print(f"{'batch':>5} {'layer':>9} {'kind':>11} {'vaefast':>8} {'numpy':>8} {'ratio':>6}")
    for r in records:
        tv, tn, flops = r["vaefast_s"], r["numpy_s"], r["flops"]
        name = (f"{r['batch']:>5} {r['n_in']:>4}x{r['n_out']:<4}" if r["kind"] != "sgemm"
                else f"{str(r['batch']) + '³':>15}")
        print(f"{name} {r['kind']:>11} {flops / tv / 1e9:8.1f} {flops / tn / 1e9:8.1f} "
              f"{tn / tv:6.2f}")


if __name__ == "__main__":
    table(int(sys.argv[1]) if len(sys.argv) > 1 else vaefast.get_num_threads())
