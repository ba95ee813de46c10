"""The first layer on CSR input vs the dense path (issue 24, item 2).

    python bench/bench_csr.py [--genes 2000] [--density 0.1] [--batch 128]
                              [--hidden 128] [--rounds 15]

A batch of `batch` cells × `genes` counts, `density` of them non-zero
(90% zeros by default), gathered from a larger CSR matrix, through the
encoder's first layer: forward ``relu(log1p(x) @ W + b)`` and the weight
and bias gradients for a given dy. Timed per step, 1 and 2 threads:

* sparse: ``ops.sparse_linear(batch, W, b, "relu", "log1p")`` and
  ``ops.sparse_linear_weight_grad(batch, dy, y, "relu", "log1p")``;
* dense: ``log1p`` of the dense batch (NumPy, in place), ``ops.linear`` and
  ``ops.linear_backward(..., need_dx=False)`` (the weight gradient);
* dense + densify: the same, starting from the CSR batch
  (``ops.gather_dense_rows`` of the gathered rows).

The gather itself (``ops.gather_csr_rows`` of 128 random rows) is timed
separately: both paths start from it. Median (and best) of `rounds` rounds:
with one thread of the calling thread's CPU time (time.thread_time, which
descheduling on a shared machine does not inflate), with two of wall time.
The machine may be shared: look at both numbers and repeat.
"""

import argparse
import os
import sys
import time

import numpy as np

import vaefast
from vaefast import ops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/timing.py
from timing import median_seconds  # noqa: E402


def make_counts(rng, cells, genes, density):
    """A CSR matrix (scipy) of counts with about `density` non-zeros."""
    import scipy.sparse as sp

    nnz_row = rng.binomial(genes, density, cells)
    indptr = np.concatenate([[0], np.cumsum(nnz_row)]).astype(np.int64)
    indices = np.concatenate([np.sort(rng.choice(genes, k, replace=False))
                              for k in nnz_row]).astype(np.int32)
    data = (rng.poisson(2.0, indptr[-1]) + 1).astype(np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(cells, genes))


def measure(genes, density, batch, hidden, rounds, threads):
    rng = np.random.default_rng(0)
    X = make_counts(rng, 20 * batch, genes, density)
    rows = rng.choice(X.shape[0], batch, replace=False)
    csr = ops.gather_csr_rows(X, rows)
    W = (rng.standard_normal((genes, hidden)) * 0.05).astype(np.float32)
    b = rng.standard_normal(hidden).astype(np.float32)
    dy = rng.standard_normal((batch, hidden)).astype(np.float32)
    dense = ops.gather_dense_rows(X, rows)
    work = np.empty_like(dense)
    y_out = np.empty((batch, hidden), np.float32)

    def sparse_step():
        y = ops.sparse_linear(csr, W, b, "relu", "log1p", out=y_out)
        ops.sparse_linear_weight_grad(csr, dy, y, "relu", "log1p")

    def dense_from(xd):
        np.log1p(xd, out=work)
        y = ops.linear(work, W, b, "relu", out=y_out)
        ops.linear_backward(work, W, dy, y, "relu", need_dx=False)

    def dense_step():
        dense_from(dense)

    def densify_step():
        dense_from(ops.gather_dense_rows(csr, slice(None)))

    def gather_step():
        ops.gather_csr_rows(X, rows)

    before = vaefast.get_num_threads()
    try:
        vaefast.set_num_threads(threads)
        clock = time.thread_time if threads == 1 else time.perf_counter
        out = {name: median_seconds(fn, rounds=rounds, min_time=0.02, clock=clock)
               for name, fn in (("sparse", sparse_step), ("dense", dense_step),
                                ("dense + densify", densify_step),
                                ("gather 128 rows", gather_step))}
    finally:
        vaefast.set_num_threads(before)
    return out, csr.nnz / (batch * genes)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--density", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    print(f"kernel set {vaefast.isa()}, load average {os.getloadavg()[0]:.1f} "
          f"(shared machine: timings vary)")
    for threads in (1, 2):
        res, filled = measure(args.genes, args.density, args.batch, args.hidden,
                              args.rounds, threads)
        print(f"\n{threads} thread(s): {args.batch} × {args.genes}, {100 * filled:.1f}% "
              f"non-zero, hidden {args.hidden}; µs per forward + weight gradient")
        print(f"{'path':<18}{'median':>10}{'best':>10}{'dense/this':>13}")
        dense_med = res["dense"][0]
        for name, (med, best) in res.items():
            ratio = f"{dense_med / med:13.2f}" if name != "gather 128 rows" else ""
            print(f"{name:<18}{1e6 * med:10.1f}{1e6 * best:10.1f}{ratio}")
        print(f"speed-up sparse vs dense: {res['dense'][0] / res['sparse'][0]:.2f}x "
              f"(median), {res['dense'][1] / res['sparse'][1]:.2f}x (best); vs dense + "
              f"densify {res['dense + densify'][0] / res['sparse'][0]:.2f}x")


if __name__ == "__main__":
    main()
