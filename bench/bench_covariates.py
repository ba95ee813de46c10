"""Categorical covariates: the gather-add against a one-hot GEMM.

    python bench/bench_covariates.py [--rounds N] [--threads 1 2]

A layer of the scVI model that receives the batch (and further categorical
covariates) adds onehot(codes)·T to its pre-activation. vaefast indexes the
rows of T (vaefast.ops.covariate_gather_add) instead of multiplying by the
mostly-zero one-hot matrix; the table's gradient is a scatter-add of the
pre-activation gradient's rows (covariate_scatter_add) instead of
onehot(codes)ᵀ·dY. Both are timed here against the GEMMs they replace
(vaefast.ops.matmul on a materialised one-hot matrix, which a user-built
one-hot condition matrix costs today), at scVI's hidden width 128 and a
batch of 128 rows, for 2 batches and for 2 batches + a 50-level and a
200-level covariate. "core" times the binding's call on codes already
checked (what a training step calls: codes are checked once per fit),
"ops" the public function with its argument checks (Python, ~30 µs).
Medians of the rounds, one process per thread count; ratios are GEMM time
/ core time within one run.
"""

import argparse
import os
import subprocess
import sys

import numpy as np

import vaefast
from vaefast import _core, ops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/timing.py
from timing import median_seconds  # noqa: E402

CASES = {"batch(2)": [2], "batch(2)+50+200": [2, 50, 200]}
B, H = 128, 128


def run(rounds):
    rng = np.random.default_rng(0)
    print(f"threads {vaefast.get_num_threads()}, batch {B}, width {H}")
    print(f"{'covariates':<17}{'core':>7}{'ops':>7}{'GEMM':>7}{'ratio':>7}"
          f"{'core':>8}{'ops':>7}{'GEMMᵀ':>7}{'ratio':>7}   (µs; gather | scatter)")
    for name, levels in CASES.items():
        codes = np.stack([rng.integers(0, n, B) for n in levels], axis=1).astype(np.int32)
        lv = np.asarray(levels, np.int64)
        y = rng.standard_normal((B, H)).astype(np.float32)
        T = rng.standard_normal((sum(levels), H)).astype(np.float32)
        hot = np.zeros((B, sum(levels)), np.float32)
        offsets = np.concatenate([[0], np.cumsum(levels)[:-1]])
        for k in range(len(levels)):
            hot[np.arange(B), offsets[k] + codes[:, k]] = 1
        out = np.zeros_like(y)  # the in-place gather adds to it: grows by |T| a call
        dT = np.empty_like(T)

        def t(fn):
            return median_seconds(fn, rounds, 0.05)[0] * 1e6

        gc = t(lambda: _core.cov_gather_add_into(codes, lv, T, 0, out))
        go = t(lambda: ops.covariate_gather_add(y, codes, levels, T, out=out))
        gm = t(lambda: ops.matmul(hot, T, out=out))
        sc = t(lambda: _core.cov_scatter_add_into(codes, lv, y, None, dT, 0))
        so = t(lambda: ops.covariate_scatter_add(y, codes, levels, out=dT))
        sm = t(lambda: ops.matmul(hot, y, trans_a=True, out=dT))
        print(f"{name:<17}{gc:>7.1f}{go:>7.1f}{gm:>7.1f}{gm / gc:>7.2f}"
              f"{sc:>8.1f}{so:>7.1f}{sm:>7.1f}{sm / sc:>7.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        vaefast.set_num_threads(args.child)
        run(args.rounds)
        return
    for n in args.threads:
        subprocess.run([sys.executable, __file__, "--rounds", str(args.rounds),
                        "--child", str(n)], check=True)


if __name__ == "__main__":
    main()
