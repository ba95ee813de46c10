"""vaefast's DE summary against scvi-tools' own DifferentialComputation on
the same posterior draws (a one-off cross-check; scvi-tools is a peer in its
own venv, never a dependency).

    python bench/de_summary_scvi.py --scvi-python /path/to/venv-scvi/bin/python

Both sides get the same synthetic normalised-expression draws h1, h2
(n_draws x genes) and the same counts, and summarise them: vaefast with
vaefast.single_cell.summarise / estimate_pseudocount, scvi-tools 1.4 with
DifferentialComputation.get_bayes_factors (mode "change", delta 0.25, the
observed-batch path, no permutation) whose model function returns the
draws. Printed: the largest difference per column.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

COLUMNS = ("proba_de", "bayes_factor", "lfc_mean", "lfc_median", "lfc_std", "scale1", "scale2")


def draws(n_draws=2000, genes=300, seed=0):
    """Two groups' draws with 30 genes up or down and counts whose group
    means put some genes below the 0.01 threshold."""
    rng = np.random.default_rng(seed)
    alpha = rng.gamma(0.5, 1.0, genes) + 1e-3
    shift = np.ones(genes)
    shift[:15], shift[15:30] = 3.0, 1 / 3.0
    h1 = rng.dirichlet(alpha * shift * 50, n_draws).astype(np.float32)
    h2 = rng.dirichlet(alpha * 50, n_draws).astype(np.float32)
    counts = rng.poisson(np.concatenate([h1[:400], h2[:400]]) * 2.0).astype(np.float32)
    return h1, h2, counts


def run_scvi(h1, h2, counts):
    from scvi.model.base._differential import DifferentialComputation

    class Manager:  # what get_bayes_factors reads of an AnnDataManager
        adata = np.empty((counts.shape[0], counts.shape[1]))

        def get_from_registry(self, key):
            return counts

    def model_fn(adata, indices, transform_batch, n_samples_overall):
        return h1 if indices[0] == 0 else h2

    idx1 = np.arange(counts.shape[0]) < 400
    dc = DifferentialComputation(model_fn, None, Manager())
    res = dc.get_bayes_factors(idx1, ~idx1, mode="change", delta=0.25,
                               use_observed_batches=True)
    return {k: np.asarray(res[k], np.float64).tolist() for k in COLUMNS + ("pseudocounts",)}


def run_vaefast(h1, h2, counts):
    from vaefast.single_cell import estimate_pseudocount, summarise

    pc = estimate_pseudocount(h1, h2, counts[:400].mean(0) < 0.01, counts[400:].mean(0) < 0.01)
    res = summarise(h1, h2, 0.25, pc)
    return dict({k: res[k].tolist() for k in COLUMNS}, pseudocounts=pc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scvi-python", default=sys.executable)
    ap.add_argument("--child", choices=["scvi", "vaefast"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        d = np.load(args.data)
        run = run_scvi if args.child == "scvi" else run_vaefast
        print(json.dumps(run(d["h1"], d["h2"], d["counts"])))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "draws.npz")
        h1, h2, counts = draws()
        np.savez(path, h1=h1, h2=h2, counts=counts)
        out = {}
        for name, python in (("vaefast", sys.executable), ("scvi", args.scvi_python)):
            res = subprocess.run([python, os.path.abspath(__file__), "--child", name,
                                  "--data", path], capture_output=True, text=True, check=True)
            out[name] = json.loads(res.stdout.splitlines()[-1])
    v, s = out["vaefast"], out["scvi"]
    print(f"pseudocount: vaefast {v['pseudocounts']:.6g}, scvi-tools {s['pseudocounts']:.6g}")
    for k in COLUMNS:
        diff = np.max(np.abs(np.asarray(v[k]) - np.asarray(s[k])))
        print(f"{k:13s} largest |vaefast - scvi-tools| = {diff:.3g}")


if __name__ == "__main__":
    main()
