"""Synthetic single-cell counts from a known model, for the scVI comparisons.

    python bench/single_cell_data.py OUT.npz [--cells 12000] [--genes 2000]

Cells belong to one of `n_types` cell types and one of `n_batches` batches.
Each cell has a latent position (its type's centre plus noise, `latent_dim`
dimensions); gene expression is

    rho  = latent · loadings + gene baseline + batch shift (per gene)
    mean = library · softmax(rho)          (library log-normal per cell)
    x    ~ ZINB(mean, theta per gene, zero-inflation pi per gene)

so the counts carry a batch effect to be removed, cell types to be kept
apart, and a planted set of genes (`de_genes`) whose expression differs
between types 0 and 1 by a known log fold change. About 90 % of the entries
are zero with the defaults. Everything is a pure function of the seed.
"""

import argparse

import numpy as np


def make_counts(n_cells=12000, n_genes=2000, n_types=5, n_batches=2, latent_dim=6,
                n_de=100, log_fold=1.5, library_mean=6.5, seed=0):
    """A dict of the counts and their ground truth (see the module docstring).

    X (n_cells, n_genes) float32 counts; batch, cell_type (n_cells,) int;
    de_genes (n_de,) int, the genes up (half) or down (half) in type 0
    against type 1; de_sign (n_de,) +1/-1.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 2.0, (n_types, latent_dim))
    cell_type = rng.integers(0, n_types, n_cells)
    batch = rng.integers(0, n_batches, n_cells)
    latent = centres[cell_type] + rng.normal(0.0, 0.5, (n_cells, latent_dim))
    loadings = rng.normal(0.0, 0.4, (latent_dim, n_genes))
    baseline = rng.normal(0.0, 1.5, n_genes)
    batch_shift = rng.normal(0.0, 0.5, (n_batches, n_genes))
    rho = latent @ loadings + baseline + batch_shift[batch]
    de_genes = rng.choice(n_genes, n_de, replace=False)
    de_sign = np.where(np.arange(n_de) < n_de // 2, 1.0, -1.0)
    rho[np.ix_(cell_type == 0, de_genes)] += 0.5 * log_fold * de_sign
    rho[np.ix_(cell_type == 1, de_genes)] -= 0.5 * log_fold * de_sign
    rho -= rho.max(axis=1, keepdims=True)
    p = np.exp(rho)
    p /= p.sum(axis=1, keepdims=True)
    library = np.exp(rng.normal(library_mean, 0.3, n_cells))
    mean = library[:, None] * p
    theta = np.exp(rng.normal(0.5, 0.5, n_genes))
    # NB(mean, theta) as a gamma-Poisson mixture, then zero inflation
    rate = rng.gamma(theta, mean / theta)
    X = rng.poisson(rate).astype(np.float32)
    pi = 1.0 / (1.0 + np.exp(-rng.normal(-2.5, 0.5, n_genes)))
    X[rng.random(X.shape) < pi] = 0.0
    return dict(X=X, batch=batch, cell_type=cell_type, de_genes=de_genes, de_sign=de_sign)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--cells", type=int, default=12000)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data = make_counts(args.cells, args.genes, seed=args.seed)
    np.savez(args.out, **data)
    X = data["X"]
    print(f"{args.out}: {X.shape[0]} cells x {X.shape[1]} genes, "
          f"{(X == 0).mean():.1%} zeros, median library {np.median(X.sum(1)):.0f}")


if __name__ == "__main__":
    main()
