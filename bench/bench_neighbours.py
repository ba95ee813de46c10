"""vaefast beside other thread pools and after idle gaps (issue 22).

    python bench/bench_neighbours.py [--repeats 3] [--threads 2] [--only NAME ...]
                                     [--against DIR] [--json FILE] [--stats]

Every figure comes from a fresh interpreter; configurations are interleaved
round after round and the medians printed. Scenarios:

  linear     vaefast.ops.linear (bias + ReLU) at the VAE's layer shapes
             32x400->784, 128x784->400, 128x400->784, GFLOP/s: alone, and
             timed right after two NumPy (OpenBLAS) products on the same
             thread count, whose workers keep spinning for a while after
             their work, and after a 10 ms sleep; each series is 10 calls,
             at N threads and at 1 thread.
  pipeline   encode 4,096 rows of a 784-400-20 model, then one small BLAS
             product of the latent means (x a 20x20 matrix), in a loop;
             rows/s, against encode alone and against 1 thread; with
             PyTorch installed also the same product in torch
             (pipeline_torch).
  requests   encode 1 and 64 rows once every 10 ms (a server answering
             requests): median latency in ms, N threads and 1 thread; with
             PyTorch installed also its encoder of the same shape.
  fit        fit 784-400-20 at batch 128 with a per-epoch callback that
             calls NumPy's BLAS (epochs of 1,024 rows); rows/s.
  torch      (if PyTorch is installed) ops.linear right after torch.matmul
             calls on the same thread count, against alone.
  torch_linear  (if PyTorch is installed) PyTorch's own linear + ReLU at the
             same shapes, alone and right after the NumPy products: the
             same pattern for another framework's pool.
  dask       (if Dask is installed) encode of 16,384 rows in chunks of 1,024
             from Dask's threaded scheduler with 1 and 2 worker threads
             (each encode call itself on N threads); rows/s.

--stats prints, for each scenario and thread count, the thread team's
running totals in the last round's child (csrc/team.c, vf_team_stats: loops
run by the team, loops a worker helped, the caller's work and join time,
lost loops, back-offs, wake-ups and their mean latency, loops run alone
while the workers slept, nested loops and those a worker helped with, and
loops a worker found itself on their caller's CPU for, where it yields).

--openblas-timeout E sets OPENBLAS_THREAD_TIMEOUT=E in the children: NumPy's
OpenBLAS (0.3.31 here) keeps each idle worker spinning, without yielding,
for about 2^28 cycles (~100 ms) after every threaded call, holding a core
that vaefast's second thread needs; E = 4 makes them sleep at once.

--against DIR runs the children with the vaefast package found in DIR
instead of the installed one (an A/B of two builds: DIR holds a `vaefast`
folder with its compiled _core). The machine's load changes every figure:
check `uptime` and repeat.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

SHAPES = ((32, 400, 784), (128, 784, 400), (128, 400, 784))

_PRELUDE = """
import json, os, sys, time
base = {base!r}
if base:  # import vaefast from DIR, not from the editable install
    sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]
    sys.path.insert(0, base)
import numpy as np
from threadpoolctl import threadpool_limits
import vaefast
from vaefast import ops
threads = {threads}
vaefast.set_num_threads(threads)
threadpool_limits(threads, user_api="blas")
rng = np.random.default_rng(0)
def med(xs):
    xs = sorted(xs); return xs[len(xs) // 2]
"""

_LINEAR = """
nb = rng.standard_normal((256, 256), dtype=np.float32)
{setup}
def before(mode):  # what runs right before each timed series of 10 calls
    if mode == "after_blas":
        nb @ nb; nb @ nb  # OpenBLAS on `threads` threads, then its spin
    elif mode == "after_torch":
        ta @ ta; ta @ ta  # PyTorch's own pool
    elif mode == "after_sleep":
        time.sleep(0.010)  # an idle gap: the workers have gone to sleep
out = {{}}
for M, K, N in {shapes}:
    x = rng.standard_normal((M, K), dtype=np.float32)
    W = rng.standard_normal((K, N), dtype=np.float32) / np.float32(K ** 0.5)
    b = rng.standard_normal(N, dtype=np.float32)
    y = np.empty((M, N), np.float32)
    {prepare}
    flops = 2.0 * M * K * N
    for mode in {modes}:
        rates = []
        for _ in range(15):
            before(mode)
            t = time.perf_counter()
            for _ in range(10):
                {call}
            rates.append(10 * flops / (time.perf_counter() - t) / 1e9)
        out[f"{{M}}x{{K}}->{{N}} {{mode}}"] = med(rates)
print(json.dumps(out))
"""

_MODEL = """
m = vaefast.VAE(784, hidden=(400,), latent_dim=20, seed=0)
X = (rng.random((4096, 784)) < 0.3).astype(np.float32)
"""

_PIPELINE = _MODEL + """
R = rng.standard_normal((20, 20)).astype(np.float32)
try:  # the same small product in PyTorch: its own thread pool wakes up
    import torch
    torch.set_num_threads(threads)
    Rt = torch.from_numpy(R)
    modes = ("encode_alone", "pipeline", "pipeline_torch")
except ImportError:
    modes = ("encode_alone", "pipeline")
out = {}
for mode in modes:
    m.encode(X)
    rates = []
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(4):
            mu, _ = m.encode(X)
            if mode == "pipeline":
                mu @ R
            elif mode == "pipeline_torch":
                torch.from_numpy(mu) @ Rt
        rates.append(4 * len(X) / (time.perf_counter() - t))
    out[mode] = med(rates)
print(json.dumps(out))
"""

_REQUESTS = _MODEL + """
encoders = {"": lambda x: m.encode(x)}
try:  # PyTorch's encoder of the same shape (784-400 ReLU, then the 2x20 head)
    import torch
    torch.set_num_threads(threads)
    net = torch.nn.Sequential(torch.nn.Linear(784, 400), torch.nn.ReLU(), torch.nn.Linear(400, 40))
    def torch_encode(x):
        with torch.no_grad():
            return net(torch.from_numpy(x)).numpy()
    encoders["torch "] = torch_encode
except ImportError:
    pass
out = {}
for label, encode in encoders.items():
    for rows in (1, 64):
        x = X[:rows]
        encode(x)
        lat = []
        for _ in range(60):
            time.sleep(0.010)
            t = time.perf_counter()
            encode(x)
            lat.append(1e3 * (time.perf_counter() - t))
        out[f"{label}{rows} rows ms"] = med(lat)
print(json.dumps(out))
"""

_FIT = _MODEL + """
nb = rng.standard_normal((256, 256), dtype=np.float32)
def cb(epoch, logs):
    nb @ nb; nb @ nb  # a NumPy statistic between epochs
Xf = X[:1024]
m.fit(Xf, epochs=1, batch_size=128)
t = time.perf_counter()
m.fit(Xf, epochs=16, batch_size=128, callbacks=[cb], progress=False)
print(json.dumps({"rows/s": 16 * len(Xf) / (time.perf_counter() - t)}))
"""

_DASK = _MODEL + """
import dask
import dask.array as da
Xd = da.from_array(np.concatenate([X] * 4), chunks=(1024, 784))
def enc(block):
    return m.encode(block)[0]
out = {}
for workers in (1, 2):  # Dask's threaded scheduler: its worker threads call encode
    Xd.map_blocks(enc, chunks=(1024, 20), dtype=np.float32).compute(scheduler="threads",
                                                                    num_workers=workers)
    rates = []
    for _ in range(7):
        t = time.perf_counter()
        Xd.map_blocks(enc, chunks=(1024, 20), dtype=np.float32).compute(
            scheduler="threads", num_workers=workers)
        rates.append(Xd.shape[0] / (time.perf_counter() - t))
    out[f"encode, {workers} dask workers"] = med(rates)
print(json.dumps(out))
"""


_STATS = """
import ctypes
_lib = ctypes.CDLL(vaefast._core.__file__)
if hasattr(_lib, "vf_team_stats"):
    _st = (ctypes.c_int64 * 13)()
    _lib.vf_team_stats(_st, 13)
    print("STATS " + json.dumps(list(_st)), file=sys.stderr)
"""
STAT_NAMES = ("jobs", "helped", "work ms", "join ms", "lost", "backoff", "wakes", "wake us",
              "woken", "alone asleep", "nested", "nested helped", "on caller cpu")


def format_stats(st):
    """One line of the team's totals (see --stats)."""
    st = list(st) + [0] * (len(STAT_NAMES) - len(st))
    st[2], st[3] = st[2] / 1e6, st[3] / 1e6
    st[7] = st[7] / 1e3 / max(st[8], 1)  # mean wake-up latency
    return " ".join(f"{n}={v:.4g}" for n, v in zip(STAT_NAMES, st) if n != "woken")


_VAEFAST_CALL = dict(prepare="pass", call='ops.linear(x, W, b, "relu", out=y)')
_TORCH_SETUP = "import torch\ntorch.set_num_threads(threads)\nta = torch.randn(256, 256)"


def scenario_code(name):
    linear = _LINEAR.format(shapes=SHAPES, setup="", modes=("alone", "after_blas", "after_sleep"),
                            **_VAEFAST_CALL)
    torch = _LINEAR.format(shapes=SHAPES, modes=("after_torch",), setup=_TORCH_SETUP,
                           **_VAEFAST_CALL)
    # PyTorch's own linear + ReLU in the same pattern: what another
    # framework's pool does beside NumPy's spinning OpenBLAS workers
    torch_linear = _LINEAR.format(
        shapes=SHAPES, modes=("alone", "after_blas"), setup=_TORCH_SETUP,
        prepare="xt, Wt, bt = (torch.from_numpy(a) for a in (x, np.ascontiguousarray(W.T), b))",
        call="torch.relu(torch.nn.functional.linear(xt, Wt, bt))")
    return {"linear": linear, "pipeline": _PIPELINE, "requests": _REQUESTS, "fit": _FIT,
            "torch": torch, "torch_linear": torch_linear, "dask": _DASK}[name]


def run_child(name, threads, base, stats=None, env=None):
    code = _PRELUDE.format(base=base or "", threads=threads) + scenario_code(name) + _STATS
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=900, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{name} ({threads} threads) failed:\n{out.stderr}")
    if stats is not None:
        stats[(name, threads)] = [json.loads(line[6:]) for line in out.stderr.splitlines()
                                  if line.startswith("STATS ")]
    return json.loads(out.stdout.strip().splitlines()[-1])


def have(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--against", default=None, help="import vaefast from this folder")
    ap.add_argument("--json", default=None, help="also write the medians here")
    ap.add_argument("--stats", action="store_true", help="print the team's counters")
    ap.add_argument("--openblas-timeout", type=int, default=None, metavar="E",
                    help="run the children with OPENBLAS_THREAD_TIMEOUT=E: OpenBLAS's idle "
                         "workers then spin about 2^E cycles instead of 2^28 (read when "
                         "NumPy loads OpenBLAS)")
    args = ap.parse_args()
    env = dict(os.environ)
    if args.openblas_timeout is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = str(args.openblas_timeout)
    names = args.only or ["linear", "pipeline", "requests", "fit"] + [
        n for n in ("torch", "torch_linear", "dask") if have(n.split("_")[0])]
    counts = sorted({args.threads, 1}, reverse=True)
    samples, stats = {}, {}
    for _ in range(args.repeats):  # interleaved rounds of fresh processes
        for name in names:
            for nt in counts:
                for key, val in run_child(name, nt, args.against, stats, env).items():
                    samples.setdefault((name, key, nt), []).append(val)
    medians = {k: statistics.median(v) for k, v in samples.items()}
    print(f"# medians of {args.repeats} fresh processes; load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    print(f"{'scenario':<10} {'measure':<28} " + " ".join(f"{f'{nt} thr':>10}" for nt in counts))
    for name, key in dict.fromkeys((n, k) for n, k, _ in medians):
        vals = " ".join(f"{medians.get((name, key, nt), float('nan')):10.4g}" for nt in counts)
        print(f"{name:<10} {key:<28} {vals}")
    if args.stats:
        print("# the team's totals in the last round's child (csrc/team.c, vf_team_stats)")
        for (name, nt), st in stats.items():
            if st and nt > 1:
                print(f"{name:<10} {nt} thr: {format_stats(st[0])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{n}|{k}|{t}": v for (n, k, t), v in medians.items()}, f, indent=1)


if __name__ == "__main__":
    main()
