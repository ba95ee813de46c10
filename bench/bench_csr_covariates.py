"""An epoch of a ``VAE.from_anndata`` model on a CSR AnnData: the dense
batch (``sparse_first_layer=False``, what such a model got before the CSR
first layer accepted covariates and batch norm) against the CSR first layer
(the default).

    python bench/bench_csr_covariates.py [--cells 10000] [--genes 2000]
                                         [--density 0.1] [--rounds 3] [--threads 1]

The model is scVI's defaults as from_anndata builds them (ZINB, batch norm
on both sides, dropout 0.1 on the encoder, a 2-category batch covariate
injected into the decoder's layers, not the encoder), hidden 128, latent
10, batch 128. Each round times one epoch of each path, alternating, on
fresh models with the same seed; the median of the rounds' wall times and
their ratio are printed. Counts as bench/bench_csr.py makes them. The
machine may be shared: compare the ratio within one run, repeat.
"""

import argparse
import os
import sys
import time

import numpy as np

import vaefast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_csr import make_counts  # noqa: E402


def adata_of(cells, genes, density):
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(0)
    X = make_counts(rng, cells, genes, density)
    batch = pd.Categorical(rng.choice(["a", "b"], cells))
    return ad.AnnData(X, obs=pd.DataFrame({"batch": batch},
                                          index=[f"c{i}" for i in range(cells)]))


def epoch_seconds(adata, sparse):
    m = vaefast.VAE.from_anndata(adata, batch_key="batch", likelihood="zinb",
                                 hidden=(128,), latent_dim=10, seed=0)
    t0 = time.perf_counter()
    m.fit(adata, epochs=1, batch_size=128, progress=False, sparse_first_layer=sparse)
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", type=int, default=10000)
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--density", type=float, default=0.1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    vaefast.set_num_threads(a.threads)
    adata = adata_of(a.cells, a.genes, a.density)
    epoch_seconds(adata, True)  # warm-up
    dense, csr = [], []
    for _ in range(a.rounds):
        dense.append(epoch_seconds(adata, False))
        csr.append(epoch_seconds(adata, True))
    d, c = float(np.median(dense)), float(np.median(csr))
    print(f"{a.cells} cells x {a.genes} genes, density {a.density}, {a.threads} thread(s), "
          f"median of {a.rounds}")
    print(f"dense batch (before): {d:.3f} s/epoch   CSR first layer (after): {c:.3f} s/epoch"
          f"   before/after: {d / c:.2f}x")


if __name__ == "__main__":
    main()
