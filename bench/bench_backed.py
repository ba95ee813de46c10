"""Streaming fit from a backed .h5ad against the same fit from an in-memory CSR (issue 24).

    python bench/bench_backed.py [--cells 1000000] [--genes 2000] [--path FILE]
                                 [--threads 2] [--epochs 1] [--batch 128]

Makes FILE (default /tmp/vaefast_cells_<cells>x<genes>.h5ad; kept for the next
run) with bench/single_cell_data.py's generator, 20,000 cells at a time with
seed = chunk number (about 10 % non-zero), then trains a scVI-shaped model
(ZINB, 128 hidden, 10 latent) for the given epochs on it twice, each in a fresh
process: once from ``anndata.read_h5ad(FILE, backed="r")`` (streamed a batch
at a time) and once from ``anndata.read_h5ad(FILE)`` (the CSR in memory).
Prints wall time per epoch, rows/s, the peak resident memory of each process
(ru_maxrss) and the ratio backed / in-memory.
"""

import argparse
import json
import os
import subprocess
import sys
import time

CHUNK = 20000

_CHILD = """
import json, sys, time
import anndata
import vaefast
path, mode, threads, epochs, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
vaefast.set_num_threads(threads)
t0 = time.perf_counter()
adata = anndata.read_h5ad(path, backed="r") if mode == "backed" else anndata.read_h5ad(path)
t_read = time.perf_counter() - t0
model = vaefast.VAE(adata.n_vars, hidden=(128,), latent_dim=10, likelihood="zinb", seed=0)
t0 = time.perf_counter()
model.fit(adata, epochs=epochs, batch_size=batch, progress=False)
t_fit = time.perf_counter() - t0
# peak resident memory of this process: VmHWM (ru_maxrss would carry the
# parent's peak across exec)
with open("/proc/self/status") as f:
    rss = next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024.0  # KiB -> MiB
print(json.dumps({"read_s": t_read, "fit_s": t_fit, "peak_rss_mib": rss}))
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


def run_child(path, mode, threads, epochs, batch):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1")
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    out = subprocess.run([sys.executable, "-c", _CHILD, path, mode, str(threads), str(epochs),
                          str(batch)], capture_output=True, text=True, env=env, timeout=7200)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} fit failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=1_000_000)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--path", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    path = args.path or f"/tmp/vaefast_cells_{args.cells}x{args.genes}.h5ad"
    if not os.path.exists(path):
        t0 = time.perf_counter()
        density = make_file(path, args.cells, args.genes)
        print(f"wrote {path}: {args.cells} cells x {args.genes} genes, "
              f"{density:.1%} non-zero, {os.path.getsize(path) / 2**30:.2f} GiB, "
              f"{time.perf_counter() - t0:.0f} s")
    res = {mode: run_child(path, mode, args.threads, args.epochs, args.batch)
           for mode in ("backed", "memory")}
    print(f"# {args.cells} cells, {args.epochs} epoch(s), batch {args.batch}, "
          f"{args.threads} threads; load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'input':<8} {'read s':>8} {'s/epoch':>9} {'rows/s':>10} {'peak RSS MiB':>13}")
    for mode, r in res.items():
        per_epoch = r["fit_s"] / args.epochs
        print(f"{mode:<8} {r['read_s']:8.1f} {per_epoch:9.2f} {args.cells / per_epoch:10.0f} "
              f"{r['peak_rss_mib']:13.0f}")
    print(f"backed / in-memory speed: {res['memory']['fit_s'] / res['backed']['fit_s']:.2f}")


if __name__ == "__main__":
    main()
