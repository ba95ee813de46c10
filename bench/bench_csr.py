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
separately: both paths start from it.

Both paths write their outputs (y, dW, db) into the same arrays every step,
as the training step writes into the model's gradient block: a fresh 1 MB
dW costs about 0.4 ms of page faults per call here, more than the sparse
weight gradient itself, and would measure the allocator instead.

W starts on a 64-byte boundary, as the first layer's weights do inside the
model (the parameter block of csrc/vae.c is 64-byte aligned and W0 is its
first part). NumPy's own allocation of W is usually 16 bytes off, which
splits every 64-byte load of the sparse forward across two cache lines
(about 1.4× its time, busy machine); ``--numpy-w`` measures that case.

Then one epoch of ``VAE.fit`` (negative binomial, ``hidden``, latent 10) on
``--cells`` cells (wall time, median of ``--epoch-rounds``): from the dense
array; from the CSR matrix with ``sparse_first_layer=False`` (dense batches
gathered from it: the same arithmetic as the dense fit); and from the CSR
matrix with the default ``sparse_first_layer=True`` (the CSR kernels run the
first layer inside the training step, csrc/vae_csr.c). Median (and best) of `rounds` rounds,
the paths interleaved round by round (a busy spell hits them all):
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


def aligned_copy(a, boundary=64):
    """A C-contiguous copy of float32 `a` whose data starts on `boundary` bytes."""
    buf = np.empty(a.size + boundary // 4, np.float32)
    start = (-buf.ctypes.data % boundary) // 4
    out = buf[start:start + a.size].reshape(a.shape)
    out[...] = a
    return out


def measure(genes, density, batch, hidden, rounds, threads, numpy_w=False):
    rng = np.random.default_rng(0)
    X = make_counts(rng, 20 * batch, genes, density)
    rows = rng.choice(X.shape[0], batch, replace=False)
    csr = ops.gather_csr_rows(X, rows)
    W = (rng.standard_normal((genes, hidden)) * 0.05).astype(np.float32)
    if not numpy_w:
        W = aligned_copy(W)  # as the model holds W0
    b = rng.standard_normal(hidden).astype(np.float32)
    dy = rng.standard_normal((batch, hidden)).astype(np.float32)
    dense = ops.gather_dense_rows(X, rows)
    work = np.empty_like(dense)
    y_out = np.empty((batch, hidden), np.float32)
    dW = aligned_copy(np.zeros((genes, hidden), np.float32))  # the model's gradient block
    db = np.empty(hidden, np.float32)

    def sparse_step():
        y = ops.sparse_linear(csr, W, b, "relu", "log1p", out=y_out)
        ops.sparse_linear_weight_grad(csr, dy, y, "relu", "log1p", dW=dW, db=db)

    def dense_from(xd):
        np.log1p(xd, out=work)
        y = ops.linear(work, W, b, "relu", out=y_out)
        ops.linear_backward(work, W, dy, y, "relu", need_dx=False, dW=dW, db=db)

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
        paths = (("sparse", sparse_step), ("dense", dense_step),
                 ("dense + densify", densify_step), ("gather 128 rows", gather_step))
        runs = {name: [] for name, _ in paths}
        for _ in range(rounds):  # interleaved: a busy spell hits every path
            for name, fn in paths:
                runs[name].append(median_seconds(fn, rounds=1, min_time=0.02,
                                                 clock=clock)[0])
        out = {name: (float(np.median(t)), min(t)) for name, t in runs.items()}
    finally:
        vaefast.set_num_threads(before)
    return out, csr.nnz / (batch * genes)


def measure_epoch(cells, genes, density, batch, hidden, rounds, threads):
    """Median wall seconds of one epoch of fit: dense array, CSR with dense
    batches, CSR with the CSR first layer."""
    X = make_counts(np.random.default_rng(1), cells, genes, density)
    dense = X.toarray()

    def epoch(data, **kw):
        m = vaefast.VAE(genes, hidden=(hidden,), latent_dim=10,
                        likelihood="negative_binomial", seed=0)
        t0 = time.perf_counter()
        m.fit(data, epochs=1, batch_size=batch, progress=False, **kw)
        return time.perf_counter() - t0

    before = vaefast.get_num_threads()
    try:
        vaefast.set_num_threads(threads)
        runs = {"dense array": [], "CSR, dense batches": [], "CSR, CSR first layer": []}
        for _ in range(rounds):  # interleaved: a busy spell hits every path
            runs["dense array"].append(epoch(dense))
            runs["CSR, dense batches"].append(epoch(X, sparse_first_layer=False))
            runs["CSR, CSR first layer"].append(epoch(X))
    finally:
        vaefast.set_num_threads(before)
    return {k: (float(np.median(v)), min(v)) for k, v in runs.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--density", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--cells", type=int, default=20000)
    ap.add_argument("--epoch-rounds", type=int, default=3)
    ap.add_argument("--numpy-w", action="store_true",
                    help="W as NumPy allocates it (usually not 64-byte aligned)")
    ap.add_argument("--no-epoch", action="store_true", help="skip the epochs of fit")
    args = ap.parse_args()
    print(f"kernel set {vaefast.isa()}, load average {os.getloadavg()[0]:.1f} "
          f"(shared machine: timings vary)")
    for threads in (1, 2):
        res, filled = measure(args.genes, args.density, args.batch, args.hidden,
                              args.rounds, threads, args.numpy_w)
        print_table(f"{threads} thread(s): {args.batch} × {args.genes}, {100 * filled:.1f}% "
                    f"non-zero, hidden {args.hidden}; µs per forward + weight gradient",
                    "path", res, "dense", 1e6, "gather 128 rows")
        print(f"speed-up sparse vs dense: {res['dense'][0] / res['sparse'][0]:.2f}x "
              f"(median), {res['dense'][1] / res['sparse'][1]:.2f}x (best); vs dense + "
              f"densify {res['dense + densify'][0] / res['sparse'][0]:.2f}x")
    for threads in () if args.no_epoch else (1, 2):
        res = measure_epoch(args.cells, args.genes, args.density, args.batch, args.hidden,
                            args.epoch_rounds, threads)
        print_table(f"{threads} thread(s): one epoch of fit, {args.cells} × {args.genes}, "
                    f"batch {args.batch}, hidden {args.hidden}; seconds (wall)",
                    "input", res, "dense array", 1.0)


def print_table(title, first, res, base, unit, no_ratio=None):
    """res: {name: (median, best) seconds}, shown in `unit`s with base's median / each."""
    print(f"\n{title}")
    print(f"{first:<24}{'median':>10}{'best':>10}{'dense/this':>13}")
    for name, (med, best) in res.items():
        ratio = f"{res[base][0] / med:13.2f}" if name != no_ratio else ""
        print(f"{name:<24}{unit * med:10.2f}{unit * best:10.2f}{ratio}")


if __name__ == "__main__":
    main()
