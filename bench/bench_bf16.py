"""bf16 vs float32 GEMM at the VAE's shapes and 2048³, per bf16 route.

    python bench/bench_bf16.py [--rounds N] [--threads 1 2]

For each layer of the 784-400-20 VAE (the head 400 -> 40 = [mu | logvar])
at batch 32, 128 and 1024, and for a 2048×2048×2048 product, the forward
``x @ W + b`` through ``vaefast.ops.linear`` with precision="fp32" and with
precision="bf16" on each bf16 route this CPU runs (set_bf16_route, as
VAEFAST_BF16 does): "amx" (TDPBF16PS on AMX tiles), "native" (VDPBF16PS,
AVX512_BF16) and "emulated" (the scalar emulation: correct bits, not meant
to be fast; left out unless --emulated). Each thread count runs in a fresh
process. Times are medians (and bests) of the rounds: the calling thread's
CPU clock at one thread (a shared machine inflates wall time, not CPU
time), wall time at two. GFLOP/s counts 2·M·N·K; the ratio columns are
each route over fp32, medians of the same run.
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np

import vaefast
from vaefast import _core, ops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/timing.py
from timing import median_seconds  # noqa: E402

BATCHES = (32, 128, 1024)
LAYERS = ((784, 400), (400, 784), (400, 40), (20, 400))
SQUARE = 2048


def routes(emulated):
    have = {"amx": _core.bf16_amx_supported(), "native": _core.bf16_native_supported(),
            "emulated": emulated}
    return [r for r, ok in have.items() if ok]


def measure(batch, n_in, n_out, rounds, bf16_routes, clock):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, n_in)).astype(np.float32)
    W = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32)
    y = np.empty((batch, n_out), np.float32)
    flops = 2.0 * batch * n_in * n_out
    out = {}
    for name in ["fp32"] + bf16_routes:
        precision = "fp32" if name == "fp32" else "bf16"
        if precision == "bf16":
            _core.set_bf16_route(name)

        def call():
            ops.linear(x, W, b, out=y, precision=precision)
        med, best = median_seconds(call, rounds=rounds, min_time=0.02, clock=clock)
        out[name] = (flops / med / 1e9, flops / best / 1e9)
    _core.set_bf16_route("auto")
    return out


def run(threads, rounds, emulated):
    vaefast.set_num_threads(threads)
    clock = time.thread_time if threads == 1 else time.perf_counter
    bf16_routes = routes(emulated)
    names = ["fp32"] + bf16_routes
    print(f"# kernel set {vaefast.isa()}, {threads} thread(s), "
          f"{'CPU' if threads == 1 else 'wall'} time, median (best) GFLOP/s of {rounds} rounds")
    print(f"{'M':>5} {'K->N':>9} " + " ".join(f"{n:>15}" for n in names) + " "
          + " ".join(f"{n + '/fp32':>13}" for n in bf16_routes))
    shapes = [(m, k, n) for m in BATCHES for k, n in LAYERS] + [(SQUARE, SQUARE, SQUARE)]
    for m, k, n in shapes:
        r = measure(m, k, n, rounds if m < SQUARE else max(3, rounds // 3), bf16_routes, clock)
        cells = " ".join(f"{r[x][0]:>7.1f} ({r[x][1]:>5.1f})" for x in names)
        ratios = " ".join(f"{r[x][0] / r['fp32'][0]:>13.2f}" for x in bf16_routes)
        print(f"{m:>5} {k:>4}->{n:<4} {cells} {ratios}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--emulated", action="store_true",
                        help="also time the scalar emulation (slow)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        run(args.child, args.rounds, args.emulated)
        return
    for threads in args.threads:  # a fresh process per thread count
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(threads),
               "--rounds", str(args.rounds)] + (["--emulated"] if args.emulated else [])
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
