"""vaefast's single-cell model against scvi-tools' SCVI on the same counts.

    python bench/bench_scvi.py [--cells 12000] [--genes 2000] [--epochs 15]
                               [--threads 1 2] [--likelihood zinb]

Both frameworks train the same architecture (128 hidden, 10 latent, one
hidden layer each side, the likelihood given, dispersion per gene, batch
size 128, Adam at 1e-3) on the same synthetic counts (single_cell_data.py:
a known low-rank ZINB model with cell types, a two-level batch effect and
about 90 % zeros), split 90/10 into training and held-out cells. Each
framework runs in a fresh process per thread count, pinned to that many
threads. Printed: the median seconds of one epoch (between epoch-end
callbacks, so one-off setup is left out), the held-out negative ELBO per
cell (one Monte-Carlo sample, reconstruction + KL(z)) and the ratios.

scvi-tools is a peer, never a dependency of vaefast: install it into a
separate venv beside the CPU build of PyTorch, and name that interpreter
with --scvi-python (default: the running one):

    pip install torch==2.13.0 scvi-tools

The architectures differ where vaefast has not yet got scVI's pieces: the
scvi-tools run uses its defaults (batch normalisation, dropout 0.1, the
batch injected into every decoder layer); the vaefast run joins the one-hot
batch to the first layer of the encoder and the decoder (n_conditions) and
has neither batch normalisation nor dropout. The table says so.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
HIDDEN, LATENT, BATCH, LR = 128, 10, 128, 1e-3


def split(n, seed=0):
    """Training and held-out row indices (90 / 10), a function of n and seed."""
    order = np.random.default_rng(seed).permutation(n)
    cut = n - n // 10
    return np.sort(order[:cut]), np.sort(order[cut:])


def run_vaefast(data, threads, epochs, likelihood):
    import vaefast
    vaefast.set_num_threads(threads)
    X, batch = data["X"], data["batch"]
    train, test = split(len(X))
    c = np.eye(int(batch.max()) + 1, dtype=np.float32)[batch]
    m = vaefast.VAE(X.shape[1], hidden=(HIDDEN,), latent_dim=LATENT, likelihood=likelihood,
                    n_conditions=c.shape[1], seed=0)
    stamps = []
    m.fit(X[train], c=c[train], epochs=epochs, batch_size=BATCH, learning_rate=LR,
          progress=False, callbacks=lambda epoch, logs: stamps.append(time.perf_counter()))
    nelbo = -float(np.mean(m.elbo(X[test], c=c[test], seed=1)))
    return dict(epoch_s=statistics.median(np.diff(stamps)), nelbo=nelbo,
                version=vaefast.__version__)


def run_scvi(data, threads, epochs, likelihood):
    import anndata
    import scipy.sparse
    import torch
    import scvi
    from lightning.pytorch.callbacks import Callback

    torch.set_num_threads(threads)
    scvi.settings.seed = 0
    scvi.settings.dl_num_workers = 0
    X, batch = data["X"], data["batch"]
    train, test = split(len(X))

    def adata_of(rows):
        a = anndata.AnnData(scipy.sparse.csr_matrix(X[rows]))
        a.obs["batch"] = batch[rows].astype(str)
        return a

    a_train, a_test = adata_of(train), adata_of(test)
    scvi.model.SCVI.setup_anndata(a_train, batch_key="batch")
    gene_likelihood = {"zinb": "zinb", "scvi_nb": "nb", "scvi_poisson": "poisson"}[likelihood]
    model = scvi.model.SCVI(a_train, n_hidden=HIDDEN, n_latent=LATENT, n_layers=1,
                            gene_likelihood=gene_likelihood, dispersion="gene")
    stamps = []

    class Stamp(Callback):
        def on_train_epoch_end(self, trainer, module):
            stamps.append(time.perf_counter())

    model.train(max_epochs=epochs, batch_size=BATCH, train_size=1.0, accelerator="cpu",
                devices=1, early_stopping=False, plan_kwargs=dict(lr=LR),
                callbacks=[Stamp()], enable_progress_bar=False)
    scvi.model.SCVI.setup_anndata(a_test, batch_key="batch")
    torch.manual_seed(1)
    # get_elbo is −(mean over cells of reconstruction loss + KL(z)), the ELBO
    # (scvi/model/base/_vaemixin.py, _log_likelihood.py in 1.4)
    nelbo = -float(model.get_elbo(adata=a_test))
    return dict(epoch_s=statistics.median(np.diff(stamps)), nelbo=nelbo,
                version=scvi.__version__)


def child(args):
    data = dict(np.load(args.data))
    run = run_vaefast if args.child == "vaefast" else run_scvi
    print("RESULT " + json.dumps(run(data, args.threads[0], args.epochs, args.likelihood)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=12000)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--likelihood", default="zinb", choices=["zinb", "scvi_nb", "scvi_poisson"])
    ap.add_argument("--scvi-python", default=sys.executable)
    ap.add_argument("--child", choices=["vaefast", "scvi"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    sys.path.insert(0, HERE)
    from single_cell_data import make_counts
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "counts.npz")
        data = make_counts(args.cells, args.genes)
        np.savez(path, **data)
        print(f"# {args.cells} cells x {args.genes} genes, {(data['X'] == 0).mean():.1%} zeros, "
              f"{args.epochs} epochs, likelihood {args.likelihood}, batch {BATCH}")
        rows = []
        for threads in args.threads:
            res = {}
            for name, python in (("vaefast", sys.executable), ("scvi", args.scvi_python)):
                env = dict(os.environ, OMP_NUM_THREADS=str(threads),
                           OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
                out = subprocess.run(
                    [python, os.path.abspath(__file__), "--child", name, "--data", path,
                     "--threads", str(threads), "--epochs", str(args.epochs),
                     "--likelihood", args.likelihood],
                    env=env, capture_output=True, text=True)
                line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
                if out.returncode or not line:
                    sys.exit(f"{name} failed ({out.returncode}):\n{out.stderr[-3000:]}")
                res[name] = json.loads(line[-1][7:])
            rows.append((threads, res))
    print("| threads | vaefast s/epoch | scvi-tools s/epoch | speed-up | "
          "held-out −ELBO vaefast | scvi-tools | difference |")
    print("|---|---|---|---|---|---|---|")
    for threads, r in rows:
        v, s = r["vaefast"], r["scvi"]
        print(f"| {threads} | {v['epoch_s']:.3f} | {s['epoch_s']:.3f} | "
              f"{s['epoch_s'] / v['epoch_s']:.1f}× | {v['nelbo']:.1f} | {s['nelbo']:.1f} | "
              f"{100 * (v['nelbo'] - s['nelbo']) / s['nelbo']:+.2f} % |")
    print(f"(vaefast {rows[0][1]['vaefast']['version']}, scvi-tools "
          f"{rows[0][1]['scvi']['version']}; vaefast without batch norm and dropout, "
          "batch joined to the first layers only)")


if __name__ == "__main__":
    main()
