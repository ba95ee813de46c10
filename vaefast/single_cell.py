"""Single-cell analyses on a trained scVI-parameterised VAE.

``differential_expression`` compares two groups of cells through the model:
for cells of each group it draws latent codes from q(z|x), decodes each to
the normalised expression softmax(rho) (the same quantity as
``VAE.get_normalized_expression``, here per posterior sample), pairs draws
of the first group with draws of the second at random, and summarises the
log2 fold change of every gene over the pairs: its mean and median, and
the posterior probability that its magnitude exceeds ``delta`` (the
"change" test of Boyeau et al., as scvi-tools' ``differential_expression``
describes it). Genes are ranked by that probability. The "vanilla" mode
instead weighs h1 > h2 against h1 <= h2 over the same pairs (its Bayes
factor), and ranks by the Bayes factor's magnitude.

Only NumPy is used; the model is reached through its public methods.
"""

from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from numpy.typing import NDArray

from . import _rows
from ._spec import likelihoods
from ._typing import ArrayLike, F32, I64

if TYPE_CHECKING:
    from .model import VAE
from ._validation import as_float


def _group_rows(groups: NDArray[Any], group: object, name: str) -> I64:
    rows = np.flatnonzero(groups == group)
    if rows.size == 0:
        raise ValueError(f"{name}={group!r} names no cell of groups")
    return rows


def _posterior_expression(model: "VAE", X: Any, c: Optional[NDArray[Any]],
                          codes: Optional[NDArray[Any]], rows: I64,
                          n_draws: int, rng: np.random.Generator) -> F32:
    """(n_draws, n_features) normalised expression of draws z ~ q(z|x) for
    cells drawn at random (with replacement) from `rows`."""
    cells = rng.choice(rows, n_draws)
    uniq, inverse = np.unique(cells, return_inverse=True)  # encode each needed row once
    cells_x = X.take(uniq) if isinstance(X, _rows.Rows) else X[uniq]
    def of(a: Optional[NDArray[Any]], at: I64) -> Optional[NDArray[Any]]:
        return None if a is None else a[at]

    mu, logvar = model.encode(cells_x, of(c, uniq), codes=of(codes, uniq))
    eps = rng.standard_normal((n_draws, mu.shape[1])).astype(np.float32)
    z = mu[inverse] + np.exp(0.5 * logvar[inverse]) * eps
    return model.decode(z, of(c, cells), codes=of(codes, cells))


def differential_expression(model: "VAE", X: Any, groups: ArrayLike, group1: object,
                            group2: object = None, c: Optional[ArrayLike] = None,
                            n_draws: int = 2000, delta: float = 0.25,
                            pseudocount: float = 1e-6, seed: int = 0,
                            mode: str = "change",
                            codes: Optional[ArrayLike] = None) -> dict[str, NDArray[Any]]:
    """Rank the features (genes) by evidence of a change between two groups.

    Parameters
    ----------
    model : vaefast.VAE
        Trained with a likelihood that has scVI's mean (``"zinb"``,
        ``"scvi_nb"``, ``"scvi_poisson"``): its decoder gives normalised
        expression.
    X : array_like, scipy sparse matrix or vaefast._rows.Rows, shape (n, n_features)
        The cells (counts), as the model's ``encode`` takes them.
    groups : array_like, shape (n,)
        The group label of each cell.
    group1, group2 :
        The labels compared; ``group2=None`` compares group1 with every
        other cell.
    c : array_like, shape (n, n_conditions), optional
        The cells' conditions, for a conditional model.
    n_draws : int
        Posterior draws per group (cells drawn at random with replacement,
        one latent sample each); draws are paired in order.
    delta : float, >= 0
        The smallest |log2 fold change| that counts as a change.
    pseudocount : float, > 0
        Added to the expression before the logarithm.
    seed : int
        Seeds the choice of cells and the latent draws.
    mode : {"change", "vanilla"}
        Which hypothesis ``bayes_factor`` weighs (the names of scvi-tools'
        modes): "change", |LFC| > delta against |LFC| <= delta; "vanilla",
        h1 > h2 against h1 <= h2 (with ``proba_m1`` = P(h1 > h2) and
        ``proba_m2`` = 1 - proba_m1).

    Returns
    -------
    dict of ndarray, shape (n_features,) each
        ``proba_de`` (P(|LFC| > delta)), ``proba_not_de`` (1 - proba_de),
        ``bayes_factor`` (natural log odds of the mode's hypothesis, each
        probability plus 1e-8), ``lfc_mean``, ``lfc_median``, ``lfc_std``,
        ``scale1`` and ``scale2`` (mean normalised expression in each group),
        in "vanilla" mode ``proba_m1`` and ``proba_m2``, and ``rank``
        (feature indices, most evident change first: "change" by proba_de,
        "vanilla" by |bayes_factor|; ties by |lfc_mean|).

    Raises
    ------
    ValueError
        If the model has no scVI mean, a group names no cell, groups does
        not have one label per row, or an argument is out of range (named).
    """
    if mode not in ("change", "vanilla"):
        raise ValueError(f"mode must be 'change' or 'vanilla', got {mode!r}")
    if not likelihoods.get(model.likelihood).observed_library:
        raise ValueError("model must use a likelihood with scVI's mean ('zinb', "
                         f"'scvi_nb', 'scvi_poisson'), got {model.likelihood!r}")
    n = X.shape[0]
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups must hold one label per row of X, shape ({n},), "
                         f"got {groups.shape}")
    if int(n_draws) != n_draws or n_draws < 1:
        raise ValueError(f"n_draws must be a positive integer, got {n_draws!r}")
    delta = as_float(delta, "delta", minimum=0.0)
    pseudocount = as_float(pseudocount, "pseudocount", minimum=0.0, open_min=True)
    c = None if c is None else np.asarray(c, dtype=np.float32)
    codes = None if codes is None else np.asarray(codes)
    rows1 = _group_rows(groups, group1, "group1")
    rows2 = (np.flatnonzero(groups != group1) if group2 is None
             else _group_rows(groups, group2, "group2"))
    if rows2.size == 0:
        raise ValueError(f"group1={group1!r} holds every cell: nothing to compare with")
    rng = np.random.default_rng(seed)
    h1 = _posterior_expression(model, X, c, codes, rows1, int(n_draws), rng)
    h2 = _posterior_expression(model, X, c, codes, rows2, int(n_draws), rng)
    lfc = np.log2(h1 + pseudocount) - np.log2(h2 + pseudocount)
    proba = (np.abs(lfc) > delta).mean(axis=0)
    lfc_mean = lfc.mean(axis=0)
    out = dict(proba_de=proba, proba_not_de=1.0 - proba, lfc_mean=lfc_mean,
               lfc_median=np.median(lfc, axis=0), lfc_std=lfc.std(axis=0),
               scale1=h1.mean(axis=0), scale2=h2.mean(axis=0))
    if mode == "change":
        out["bayes_factor"] = _log_odds(proba)
        key = proba
    else:
        out["proba_m1"] = (h1 > h2).mean(axis=0)
        out["proba_m2"] = 1.0 - out["proba_m1"]
        out["bayes_factor"] = _log_odds(out["proba_m1"])
        key = np.abs(out["bayes_factor"])
    out["rank"] = np.lexsort((-np.abs(lfc_mean), -key))
    return out


def _log_odds(p: NDArray[Any], eps: float = 1e-8) -> NDArray[Any]:
    """log(p + eps) - log(1 - p + eps): eps keeps p = 0 or 1 finite."""
    return np.log(p + eps) - np.log(1.0 - p + eps)
