"""bf16 vs float32 GEMM at the VAE's shapes, one thread, one process.

    python bench/bench_bf16.py [--rounds N]

For each layer of the 784-400-20 VAE (the head 400 -> 40 = [mu | logvar])
at batch 32, 128 and 1024, the forward product ``x @ W + b`` through
``vaefast.ops.linear`` with precision="fp32" and precision="bf16", in the
same run, timed with the thread's CPU clock (median and best of the
rounds; a shared machine inflates wall time, not CPU time). GFLOP/s counts
2·M·N·K. The bf16 column says which implementation ran: "native"
(VDPBF16PS, avx512 set on a CPU with AVX512_BF16) or "emulated" (the
scalar emulation: correct bits, not meant to be fast). The last column is
the bf16/fp32 speed ratio of the medians.
"""

import argparse
import os
import sys
import time

import numpy as np

import vaefast
from vaefast import _core, ops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/timing.py
from timing import median_seconds  # noqa: E402

BATCHES = (32, 128, 1024)
LAYERS = ((784, 400), (400, 40), (20, 400), (400, 784))


def measure(batch, n_in, n_out, rounds):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, n_in)).astype(np.float32)
    W = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32)
    y = np.empty((batch, n_out), np.float32)
    flops = 2.0 * batch * n_in * n_out
    out = {}
    for precision in ("fp32", "bf16"):
        def call():
            ops.linear(x, W, b, out=y, precision=precision)
        med, best = median_seconds(call, rounds=rounds, min_time=0.02, clock=time.thread_time)
        out[precision] = (flops / med / 1e9, flops / best / 1e9)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    vaefast.set_num_threads(1)
    print(f"# kernel set {vaefast.isa()}, bf16 {_core.bf16_auto_impl()}, 1 thread, "
          f"CPU time, median (best) GFLOP/s of {args.rounds} rounds")
    print(f"{'batch':>5} {'layer':>9} {'fp32':>15} {'bf16':>15} {'bf16/fp32':>9}")
    for batch in BATCHES:
        for n_in, n_out in LAYERS:
            r = measure(batch, n_in, n_out, args.rounds)
            f, h = r["fp32"], r["bf16"]
            print(f"{batch:>5} {n_in:>4}->{n_out:<4} {f[0]:>7.1f} ({f[1]:>5.1f}) "
                  f"{h[0]:>7.1f} ({h[1]:>5.1f}) {h[0] / f[0]:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
