"""Inference peers: vaefast vs onnxruntime (the exported encoder) vs PyTorch
(the to_torch module), on the same weights and thread count.

784-400-20 encoder (mu and logvar), random binarised rows:

* throughput: ``encode`` over 8192 rows,
* latency: one row (the serving case).

    pytest bench/bench_interop.py --benchmark-only       # pytest-benchmark
    python bench/bench_interop.py [--threads 1] [--rounds 7]   # table

The table interleaves the engines round by round (so a burst of load on the
shared machine hits all of them) and reports medians. With one thread every
engine computes on the calling thread, so the clock is the thread's CPU time
(time.thread_time_ns), which other processes on the machine do not inflate;
with more threads it is wall time.
"""

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import pytest

import vaefast

D, H, Z = 784, 400, 20
FLOP_PER_ROW = 2 * (D * H + H * 2 * Z)  # encoder forward: 0.66 MFLOP
THROUGHPUT_ROWS = 8192
THREADS = int(os.environ.get("VAEFAST_BENCH_THREADS", "1"))


def make_data(n, seed=0):
    return (np.random.default_rng(seed).random((n, D)) < 0.3).astype(np.float32)


def engines(threads, folder):
    """{name: encode(X) callable}, every engine on `threads` threads; an
    engine whose package is missing is left out."""
    vaefast.set_num_threads(threads)
    model = vaefast.VAE(D, hidden=(H,), latent_dim=Z, seed=0)
    runs = {"vaefast": model.encode}
    try:
        import onnxruntime as ort

        path = os.path.join(folder, "encoder.onnx")
        from vaefast.interop import to_onnx

        to_onnx(model, path, part="encoder")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        runs["onnxruntime"] = lambda X: session.run(None, {"x": X})
    except ImportError:
        pass
    try:
        import torch

        from vaefast.interop import to_torch

        torch.set_num_threads(threads)
        module = to_torch(model).eval()

        def run_torch(X):
            with torch.inference_mode():
                return module.encode(torch.from_numpy(X))

        runs["torch"] = run_torch
    except ImportError:
        pass
    return runs


# ------------------------------------------------------- pytest-benchmark
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return engines(THREADS, str(tmp_path_factory.mktemp("onnx")))


@pytest.mark.parametrize("engine", ["vaefast", "onnxruntime", "torch"])
@pytest.mark.parametrize("rows", [1, THROUGHPUT_ROWS])
def test_encode(benchmark, runs, engine, rows):
    if engine not in runs:
        pytest.skip(f"{engine} is not installed")
    X = make_data(rows)
    runs[engine](X)
    benchmark.group = f"encode {rows} rows, {THREADS} thread(s)"
    if rows == 1:
        benchmark.pedantic(runs[engine], args=(X,), rounds=2000, iterations=1,
                           warmup_rounds=200)
    else:
        benchmark.pedantic(runs[engine], args=(X,), rounds=7, iterations=1)


# ------------------------------------------------------------ table
def interleaved_medians(runs, X, rounds, calls):
    """Median seconds per call of each engine; each round times `calls`
    back-to-back calls of every engine in turn."""
    clock = time.thread_time_ns if THREADS == 1 else time.perf_counter_ns
    times = {name: [] for name in runs}
    for fn in runs.values():  # warm-up: workspaces, ORT's prepacked weights
        for _ in range(3):
            fn(X)
    for _ in range(rounds):
        for name, fn in runs.items():
            t = clock()
            for _ in range(calls):
                fn(X)
            times[name].append((clock() - t) / calls / 1e9)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main():
    global THREADS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    THREADS = args.threads
    with tempfile.TemporaryDirectory() as folder:
        runs = engines(THREADS, folder)
        big = interleaved_medians(runs, make_data(THROUGHPUT_ROWS), args.rounds, 1)
        one = interleaved_medians(runs, make_data(1), args.rounds, 500)
    clock = "thread CPU time" if THREADS == 1 else "wall time"
    print(f"vaefast {vaefast.isa()}, {THREADS} thread(s), medians of {args.rounds} "
          f"interleaved rounds ({clock})")
    print(f"{'engine':<12} {'encode 8192 rows/s':>19} {'GFLOP/s':>8} {'1-row latency us':>17}")
    for name in runs:
        rate = THROUGHPUT_ROWS / big[name]
        print(f"{name:<12} {rate:>19.0f} {rate * FLOP_PER_ROW / 1e9:>8.1f} "
              f"{one[name] * 1e6:>17.1f}")


if __name__ == "__main__":
    main()
