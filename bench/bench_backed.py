"""Streaming fit from a backed .h5ad against the same fit from an in-memory CSR (issue 24).

    python bench/bench_backed.py [--cells 1000000] [--genes 2000] [--path FILE]
                                 [--threads 1,2] [--rounds 3] [--epochs 1] [--batch 128]

Makes FILE (default /tmp/vaefast_cells_<cells>x<genes>.h5ad; kept for the next
run) with bench/single_cell_data.py's generator, 20,000 cells at a time with
seed = chunk number (about 10 % non-zero), then trains a scVI-shaped model
(ZINB, 128 hidden, 10 latent) for the given epochs on it twice, each in a fresh
process: once from ``anndata.read_h5ad(FILE, backed="r")`` (streamed a buffer
of CSR rows at a time) and once from ``anndata.read_h5ad(FILE)`` (the CSR in
memory), for each thread count, the two interleaved, `rounds` times. Prints
each run's wall time per epoch, the CPU seconds of its fit (all threads,
from getrusage) and peak resident memory (VmHWM), then per thread count the
medians and the median of the per-round ratios backed / in-memory speed and
of CPU seconds, with the load average before and after. On a shared
machine the wall-time ratio moves with the others' load; the CPU-seconds
ratio much less (it misses only time lost waiting).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

CHUNK = 20000

_CHILD = """
import json, sys, time
import anndata
import vaefast
path, mode, threads, epochs, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
vaefast.set_num_threads(threads)
if mode == "backed_old":  # another streaming.py (e.g. `git show main:vaefast/training/streaming.py`)
    import importlib.util, vaefast.training as tr
    spec = importlib.util.spec_from_file_location("vaefast.training._streaming_old", sys.argv[6])
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    tr.streaming.RandomAccessSource = old.RandomAccessSource
    mode = "backed"
t0 = time.perf_counter()
adata = anndata.read_h5ad(path, backed="r") if mode == "backed" else anndata.read_h5ad(path)
t_read = time.perf_counter() - t0
model = vaefast.VAE(adata.n_vars, hidden=(128,), latent_dim=10, likelihood="zinb", seed=0)
import resource
ru0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
model.fit(adata, epochs=epochs, batch_size=batch, progress=False)
t_fit = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)  # CPU of the fit (all its threads)
# peak resident memory of this process: VmHWM (ru_maxrss would carry the
# parent's peak across exec)
with open("/proc/self/status") as f:
    rss = next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024.0  # KiB -> MiB
print(json.dumps({"read_s": t_read, "fit_s": t_fit, "peak_rss_mib": rss,
                  "cpu_s": ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime,
                  "sys_s": ru.ru_stime - ru0.ru_stime}))
"""


def make_file(path, cells, genes):
    """Write `cells` × `genes` counts (CSR) to `path` as an .h5ad."""
    import anndata
    import numpy as np
    import scipy.sparse as sp

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from single_cell_data import make_counts

    parts, nnz = [], 0
    for k, start in enumerate(range(0, cells, CHUNK)):
        n = min(CHUNK, cells - start)
        X = make_counts(n_cells=n, n_genes=genes, seed=k)["X"]
        X[X.sum(axis=1) == 0, 0] = 1.0  # no empty cell (scVI's library would be 0)
        parts.append(sp.csr_matrix(X))
        nnz += parts[-1].nnz
    X = sp.vstack(parts, format="csr")
    del parts
    adata = anndata.AnnData(X=X)
    adata.obs_names = [f"c{i}" for i in range(cells)]
    adata.write_h5ad(path)
    return nnz / (cells * genes)


def run_child(path, mode, threads, epochs, batch, old=""):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1")
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    out = subprocess.run([sys.executable, "-c", _CHILD, path, mode, str(threads), str(epochs),
                          str(batch), old], capture_output=True, text=True, env=env, timeout=7200)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} fit failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=1_000_000)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--path", default=None)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--old", default="", help="also time backed_old: the backed fit with "
                    "this file's RandomAccessSource (a streaming.py of another commit)")
    args = ap.parse_args()
    path = args.path or f"/tmp/vaefast_cells_{args.cells}x{args.genes}.h5ad"
    if not os.path.exists(path):
        t0 = time.perf_counter()
        density = make_file(path, args.cells, args.genes)
        print(f"wrote {path}: {args.cells} cells x {args.genes} genes, "
              f"{density:.1%} non-zero, {os.path.getsize(path) / 2**30:.2f} GiB, "
              f"{time.perf_counter() - t0:.0f} s")
    threads = [int(t) for t in args.threads.split(",")]
    load0 = os.getloadavg()[0]
    modes = ("backed", "memory") + (("backed_old",) if args.old else ())
    runs = {(t, mode): [] for t in threads for mode in modes}
    print(f"{'round':>5} {'threads':>7} {'input':<10} {'read s':>7} {'s/epoch':>8} "
          f"{'CPU s (sys)':>13} {'peak RSS MiB':>13} {'load':>5}", flush=True)
    for r in range(args.rounds):
        for t in threads:
            # alternate which goes first, so that neither always meets the same load
            for mode in (modes if r % 2 == 0 else modes[::-1]):
                res = run_child(path, mode, t, args.epochs, args.batch, args.old)
                runs[t, mode].append(res)
                print(f"{r:5d} {t:7d} {mode:<10} {res['read_s']:7.1f} "
                      f"{res['fit_s'] / args.epochs:8.2f} "
                      f"{res['cpu_s']:7.1f} ({res['sys_s']:4.1f}) {res['peak_rss_mib']:13.0f} "
                      f"{os.getloadavg()[0]:5.1f}", flush=True)
    print(f"# {args.cells} cells, {args.epochs} epoch(s), batch {args.batch}, "
          f"{args.rounds} rounds; load average {load0:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after")
    print(f"{'threads':>7} {'backed s/epoch':>15} {'memory s/epoch':>15} "
          f"{'backed/memory speed (median of rounds)':>40} {'peak RSS MiB b/m':>18}")
    for t in threads:
        b, m = runs[t, "backed"], runs[t, "memory"]
        ratios = sorted(mm["fit_s"] / bb["fit_s"] for bb, mm in zip(b, m))
        cpu = sorted(mm["cpu_s"] / bb["cpu_s"] for bb, mm in zip(b, m))
        med = lambda xs: float(np.median(xs))  # noqa: E731
        print(f"{t:7d} {med([x['fit_s'] for x in b]) / args.epochs:15.2f} "
              f"{med([x['fit_s'] for x in m]) / args.epochs:15.2f} "
              f"{med(ratios):13.2f} (range {ratios[0]:.2f}-{ratios[-1]:.2f}) "
              f"{max(x['peak_rss_mib'] for x in b):9.0f}/{max(x['peak_rss_mib'] for x in m):.0f}")
        print(f"{t:7d} fit CPU seconds, in-memory / backed: median {med(cpu):.2f} "
              f"(range {cpu[0]:.2f}-{cpu[-1]:.2f})")
        if args.old:
            o = runs[t, "backed_old"]
            ratios = sorted(mm["fit_s"] / oo["fit_s"] for oo, mm in zip(o, m))
            print(f"{t:7d} backed_old {med([x['fit_s'] for x in o]) / args.epochs:.2f} s/epoch, "
                  f"speed / memory {med(ratios):.2f} (range {ratios[0]:.2f}-{ratios[-1]:.2f}), "
                  f"peak RSS {max(x['peak_rss_mib'] for x in o):.0f} MiB")


if __name__ == "__main__":
    main()
