"""vaefast's single-cell model against scvi-tools' SCVI on the same counts.

    python bench/bench_scvi.py [--cells 12000] [--genes 2000] [--epochs 15]
                               [--threads 1 2] [--likelihood zinb]
                               [--speed-only] [--bf16]

Both frameworks train the same architecture (128 hidden, 10 latent, one
hidden layer each side, the likelihood given, dispersion per gene, batch
size 128, Adam at 1e-3, the KL term's weight rising over --kl-warmup
epochs: scvi-tools' TrainingPlan default n_epochs_kl_warmup=400, weight
epoch/400, so 0 to 0.035 over 15 epochs; vaefast's kl_warmup_epochs gives
(epoch + 1)/400) on the same synthetic counts (single_cell_data.py:
a known low-rank ZINB model with cell types, a two-level batch effect and
about 90 % zeros), split 90/10 into training and held-out cells. Each
framework runs in a fresh process per thread count, pinned to that many
threads. Printed: the median seconds of one epoch (between epoch-end
callbacks, so one-off setup is left out), in wall-clock time and in the
process's CPU time (on a busy machine the CPU time is the steadier of the
two; with 1 thread they agree on a quiet one), the held-out negative ELBO per
cell (one Monte-Carlo sample, reconstruction + KL(z)) and the ratios; then,
over all cells, the cell-type silhouette and the kNN batch entropy of the
latent space and the AUC with which each framework's differential
expression between types 0 and 1 ranks the planted genes (scikit-learn).
--speed-only leaves that analysis out (it takes longer than the training).
--bf16 adds a row for vaefast with fit(precision="bf16") (docs/precision.md)
beside the float32 one, and runs scvi-tools a second time with Lightning's
precision="bf16-mixed" (PyTorch's bf16 autocast): the bf16 row is then
given against both scvi-tools runs, so it is also compared like for like.

scvi-tools is a peer, never a dependency of vaefast: install it into a
separate venv beside the CPU build of PyTorch, and name that interpreter
with --scvi-python (default: the running one):

    pip install torch==2.13.0 scvi-tools

Both read the same CSR AnnData (obs "batch", "cell_type"). The vaefast
model is built in one function, build_vaefast: scVI's architecture (batch
norm on both sides, dropout 0.1 on the encoder, ZINB, per-gene dispersion,
observed library, log(1 + x) input, the batch added to every decoder hidden
layer and not the encoder). Differential expression uses each
framework's own method with the same arguments (mode "change", delta 0.25);
the column "both tails" ranks by P(|LFC| > delta) instead (test_mode "two";
for vaefast also with a fixed pseudocount of 1e-6: vaefast's summary before
it followed scvi-tools), to show what that choice costs each framework.
"""

import argparse
import json
import os
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


def adata_of(data, rows):
    """An AnnData of the given rows: CSR counts, obs "batch" and "cell_type"
    as strings (categories), as both frameworks read them."""
    import anndata
    import scipy.sparse
    a = anndata.AnnData(scipy.sparse.csr_matrix(data["X"][rows]))
    a.obs["batch"] = data["batch"][rows].astype(str)
    a.obs["cell_type"] = data["cell_type"][rows].astype(str)
    return a


def build_vaefast(adata, likelihood):
    """vaefast's side of the comparison: from_anndata's scVI defaults (batch
    norm on both sides, dropout 0.1 on the encoder, the batch a categorical
    covariate added to every decoder hidden layer and not the encoder),
    128/10, one hidden layer, per-gene dispersion, observed library,
    log(1 + x) encoder input."""
    import vaefast
    return vaefast.VAE.from_anndata(adata, batch_key="batch", hidden=(HIDDEN,),
                                    latent_dim=LATENT, likelihood=likelihood, seed=0)


def stamp(stamps):
    """Append (wall, process CPU) seconds now: one epoch-end mark."""
    stamps.append((time.perf_counter(), time.process_time()))


def epoch_times(stamps):
    """Median (wall, CPU) seconds between consecutive epoch-end marks."""
    d = np.diff(np.array(stamps), axis=0)
    return dict(epoch_s=float(np.median(d[:, 0])), epoch_cpu=float(np.median(d[:, 1])))


def run_vaefast(data, threads, epochs, likelihood, kl_warmup, analysis=True, precision=None):
    import vaefast
    vaefast.set_num_threads(threads)
    train, test = split(len(data["X"]))
    a_train = adata_of(data, train)
    m = build_vaefast(a_train, likelihood)
    stamps = []
    m.fit(a_train, epochs=epochs, batch_size=BATCH, learning_rate=LR, progress=False,
          kl_warmup_epochs=kl_warmup, callbacks=lambda epoch, logs: stamp(stamps),
          **({} if precision is None else {"precision": precision}))
    nelbo = -float(np.mean(m.elbo(adata_of(data, test), seed=1)))
    result = dict(epoch_times(stamps), nelbo=nelbo, version=vaefast.__version__)
    if not analysis:
        return result, None
    a_all = adata_of(data, np.arange(len(data["X"])))
    de = m.differential_expression(a_all, "cell_type", "0", "1", mode="change", delta=0.25)
    de = de.loc[[str(g) for g in a_all.var_names]]  # back in gene order
    # vaefast's summary before it followed scvi-tools: both tails, pseudocount 1e-6
    old = m.differential_expression(a_all, "cell_type", "0", "1", mode="change", delta=0.25,
                                    test_mode="two", pseudocount=1e-6)
    analysis = dict(latent=m.get_latent_representation(a_all),
                    proba_de=de["proba_de"].to_numpy(), lfc=de["lfc_mean"].to_numpy(),
                    proba_de_two=old.loc[de.index, "proba_de"].to_numpy())
    return result, analysis


def run_scvi(data, threads, epochs, likelihood, kl_warmup, analysis=True, precision=None):
    import torch
    import scvi
    from lightning.pytorch.callbacks import Callback

    torch.set_num_threads(threads)
    scvi.settings.seed = 0
    scvi.settings.dl_num_workers = 0
    train, test = split(len(data["X"]))
    a_train, a_test = adata_of(data, train), adata_of(data, test)
    scvi.model.SCVI.setup_anndata(a_train, batch_key="batch")
    gene_likelihood = {"zinb": "zinb", "scvi_nb": "nb", "scvi_poisson": "poisson"}[likelihood]
    model = scvi.model.SCVI(a_train, n_hidden=HIDDEN, n_latent=LATENT, n_layers=1,
                            gene_likelihood=gene_likelihood, dispersion="gene")
    stamps = []

    class Stamp(Callback):
        def on_train_epoch_end(self, trainer, module):
            stamp(stamps)

    model.train(max_epochs=epochs, batch_size=BATCH, train_size=1.0, accelerator="cpu",
                devices=1, early_stopping=False,
                plan_kwargs=dict(lr=LR, n_epochs_kl_warmup=kl_warmup),
                callbacks=[Stamp()], enable_progress_bar=False,
                **({} if precision is None else {"precision": "bf16-mixed"}))
    scvi.model.SCVI.setup_anndata(a_test, batch_key="batch")
    torch.manual_seed(1)
    # get_elbo is −(mean over cells of reconstruction loss + KL(z)), the ELBO
    # (scvi/model/base/_vaemixin.py, _log_likelihood.py in 1.4)
    nelbo = -float(model.get_elbo(adata=a_test))
    result = dict(epoch_times(stamps), nelbo=nelbo, version=scvi.__version__)
    if not analysis:
        return result, None
    a_all = adata_of(data, np.arange(len(data["X"])))
    scvi.model.SCVI.setup_anndata(a_all, batch_key="batch")
    de = model.differential_expression(a_all, groupby="cell_type", group1="0", group2="1",
                                       mode="change", delta=0.25)
    de = de.loc[[str(g) for g in a_all.var_names]]  # back in gene order
    two = model.differential_expression(a_all, groupby="cell_type", group1="0", group2="1",
                                        mode="change", delta=0.25, test_mode="two")
    analysis = dict(latent=model.get_latent_representation(a_all),
                    proba_de=de["proba_de"].to_numpy(), lfc=de["lfc_mean"].to_numpy(),
                    proba_de_two=two.loc[de.index, "proba_de"].to_numpy())
    return result, analysis


def child(args):
    data = dict(np.load(args.data))
    run = run_scvi if args.child.startswith("scvi") else run_vaefast
    result, analysis = run(data, args.threads[0], args.epochs, args.likelihood, args.kl_warmup,
                           not args.speed_only, "bf16" if args.child.endswith("-bf16") else None)
    if analysis is not None:
        np.savez(args.out, **analysis)
    print("RESULT " + json.dumps(result))


def batch_entropy(latent, batch, k=50):
    """Mean over cells of the entropy of the batch labels among each cell's
    k nearest neighbours in the latent space, divided by log(#batches):
    1 = batches perfectly mixed, 0 = separated."""
    from sklearn.neighbors import NearestNeighbors
    nn = NearestNeighbors(n_neighbors=k + 1).fit(latent)
    idx = nn.kneighbors(latent, return_distance=False)[:, 1:]
    levels = np.unique(batch)
    p = np.stack([(batch[idx] == b).mean(axis=1) for b in levels], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return float(h.mean() / np.log(len(levels)))


def analysis_metrics(path, data):
    """Cell-type silhouette and batch entropy of the latent space, and the
    AUC of the DE ranking (proba_de, |lfc|) for the planted genes."""
    from sklearn.metrics import roc_auc_score, silhouette_score
    a = np.load(path)
    truth = np.zeros(data["X"].shape[1], bool)
    truth[data["de_genes"]] = True
    return dict(silhouette=float(silhouette_score(a["latent"], data["cell_type"])),
                batch_entropy=batch_entropy(a["latent"], data["batch"]),
                auc_proba=float(roc_auc_score(truth, a["proba_de"])),
                auc_two=float(roc_auc_score(truth, a["proba_de_two"])),
                auc_lfc=float(roc_auc_score(truth, np.abs(a["lfc"]))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=12000)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--likelihood", default="zinb", choices=["zinb", "scvi_nb", "scvi_poisson"])
    ap.add_argument("--kl-warmup", type=int, default=400,
                    help="epochs of KL warm-up for both (scvi-tools' default 400; 0: none)")
    ap.add_argument("--scvi-python", default=sys.executable)
    ap.add_argument("--speed-only", action="store_true",
                    help="time the epochs and the held-out ELBO only (no DE, no latent metrics)")
    ap.add_argument("--bf16", action="store_true",
                    help='add vaefast with precision="bf16" as an extra row')
    ap.add_argument("--child", choices=["vaefast", "vaefast-bf16", "scvi", "scvi-bf16"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
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
              f"{args.epochs} epochs, likelihood {args.likelihood}, batch {BATCH}, "
              f"KL warm-up {args.kl_warmup} epochs")
        rows = []
        runs = [("vaefast", sys.executable), ("scvi", args.scvi_python)]
        if args.bf16:
            runs[1:1] = [("vaefast-bf16", sys.executable), ("scvi-bf16", args.scvi_python)]
        for threads in args.threads:
            res = {}
            for name, python in runs:
                env = dict(os.environ, OMP_NUM_THREADS=str(threads),
                           OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
                out_path = os.path.join(tmp, f"{name}-{threads}.npz")
                out = subprocess.run(
                    [python, os.path.abspath(__file__), "--child", name, "--data", path,
                     "--threads", str(threads), "--epochs", str(args.epochs),
                     "--likelihood", args.likelihood, "--kl-warmup", str(args.kl_warmup),
                     "--out", out_path] + (["--speed-only"] if args.speed_only else []),
                    env=env, capture_output=True, text=True)
                line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
                if out.returncode or not line:
                    sys.exit(f"{name} failed ({out.returncode}):\n{out.stderr[-3000:]}")
                res[name] = json.loads(line[-1][7:])
                if not args.speed_only:
                    res[name].update(analysis_metrics(out_path, data))
            rows.append((threads, res))
    print_speed(rows)
    if not args.speed_only:
        print_analysis(rows)
    print(f"(vaefast {rows[0][1]['vaefast']['version']}, scvi-tools "
          f"{rows[0][1]['scvi']['version']})")


def print_speed(rows):
    """The epoch-time and held-out ELBO table: each vaefast row against
    scvi-tools at the same thread count (float32; the bf16 row also against
    scvi-tools' bf16-mixed run)."""
    print("| threads | vaefast | scvi-tools | s/epoch wall | scvi-tools | speed-up | s/epoch CPU | "
          "scvi-tools | speed-up | held-out −ELBO | scvi-tools | difference |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    pairs = [("vaefast", "scvi"), ("vaefast-bf16", "scvi"), ("vaefast-bf16", "scvi-bf16")]
    for threads, r in rows:
        for name, peer in [(a, b) for a, b in pairs if a in r and b in r]:
            v, s = r[name], r[peer]
            print(f"| {threads} | {'bf16' if name.endswith('-bf16') else 'fp32'} | "
                  f"{'bf16-mixed' if peer.endswith('-bf16') else 'fp32'} | "
                  f"{v['epoch_s']:.3f} | {s['epoch_s']:.3f} | "
                  f"{s['epoch_s'] / v['epoch_s']:.1f}× | {v['epoch_cpu']:.3f} | "
                  f"{s['epoch_cpu']:.3f} | {s['epoch_cpu'] / v['epoch_cpu']:.1f}× | "
                  f"{v['nelbo']:.1f} | {s['nelbo']:.1f} | "
                  f"{100 * (v['nelbo'] - s['nelbo']) / s['nelbo']:+.2f} % |")


def print_analysis(rows):
    """The latent-space and differential-expression table."""
    print("\n| threads | framework | cell-type silhouette | batch entropy (kNN 50) | "
          "DE AUC (proba_de) | DE AUC (abs lfc) | DE AUC (both tails) |")
    print("|---|---|---|---|---|---|---|")
    for threads, r in rows:
        for name in r:  # vaefast, scvi; with --bf16 also vaefast-bf16, scvi-bf16
            m = r[name]
            print(f"| {threads} | {name} | {m['silhouette']:.3f} | {m['batch_entropy']:.3f} | "
                  f"{m['auc_proba']:.3f} | {m['auc_lfc']:.3f} | {m['auc_two']:.3f} |")


if __name__ == "__main__":
    main()
