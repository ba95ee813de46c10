"""Single-cell analyses on a trained scVI-parameterised VAE.

``differential_expression`` compares two groups of cells through the model,
as scvi-tools 1.4's ``differential_expression`` does with its defaults
(scvi/model/base/_differential.py, ``DifferentialComputation``): for cells
of each group it draws latent codes from q(z|x), decodes each (under the
cell's own batch) to the normalised expression softmax(rho) (the same
quantity as ``VAE.get_normalized_expression``, here per posterior sample),
pairs the draws of the two groups in order, and summarises the log2 fold
change of every gene over the pairs (``summarise``):

- "change" mode (Boyeau et al.): with r = log2(h1 + pc) - log2(h2 + pc),
  ``proba_de`` = max(P(r >= delta), P(r < -delta)) (scvi-tools'
  ``test_mode="three"``, its default; ``"two"`` sums the two tails). The
  pseudocount pc, unless given, is estimated as scvi-tools does
  (``estimate_pseudocount``): it shrinks the fold changes of genes a group
  does not express. ``lfc_mean``/``lfc_median``/``lfc_std`` use pc / 1000.
- "vanilla" mode: P(h1 > h2) over the pairs and its log odds.

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


def _group_mean(X: Any, rows: I64, step: int = 4096) -> NDArray[np.float64]:
    """(n_features,) mean count of the cells `rows` of X (dense, scipy sparse
    or vaefast._rows.Rows), read a chunk of rows at a time."""
    total = np.zeros(X.shape[1], np.float64)
    for lo in range(0, rows.size, step):
        part = rows[lo:lo + step]
        chunk = X.take(part) if isinstance(X, _rows.Rows) else X[part]
        total += np.asarray(chunk.sum(axis=0), dtype=np.float64).ravel()
    return total / rows.size


def estimate_pseudocount(h1: NDArray[Any], h2: NDArray[Any], unexpressed1: NDArray[Any],
                         unexpressed2: NDArray[Any], quantile: float = 0.9) -> float:
    """The pseudocount of the "change" mode, as scvi-tools 1.4's
    ``estimate_pseudocounts_offset`` defines it: in each group, the
    `quantile` of the per-gene maxima over draws of the normalised
    expression among the genes the group does not express (`unexpressed*`,
    boolean (n_features,); 1e-10 when there is none), the larger of the two
    groups, divided by the number of genes, and at least 1e-10.

    h1, h2 : (n_draws, n_features) normalised expression draws.
    """
    eps = []
    for h, unexpressed in ((h1, unexpressed1), (h2, unexpressed2)):
        peak = h.max(axis=0)
        eps.append(float(np.quantile(peak[unexpressed], quantile)) if unexpressed.any()
                   else 1e-10)
    return max(1e-10, max(eps) / int(h1.shape[1]))


def summarise(h1: NDArray[Any], h2: NDArray[Any], delta: float, pseudocount: float,
              mode: str = "change", test_mode: str = "three") -> dict[str, NDArray[Any]]:
    """The per-gene table of paired draws h1[k] against h2[k].

    h1, h2 : (n_draws, n_features) normalised expression, row k of each a pair.
    Returns the dict described in ``differential_expression`` (all modes
    give proba_de and the lfc columns; "vanilla" adds proba_m1/proba_m2 and
    its Bayes factor).
    """
    r = np.log2(h1 + pseudocount) - np.log2(h2 + pseudocount)
    up, down = (r >= delta).mean(axis=0), (r < -delta).mean(axis=0)
    proba = up + down if test_mode == "two" else np.maximum(up, down)
    # the effect size itself with a 1000x smaller pseudocount (as scvi-tools)
    lfc = np.log2(h1 + 1e-3 * pseudocount) - np.log2(h2 + 1e-3 * pseudocount)
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


def differential_expression(model: "VAE", X: Any, groups: ArrayLike, group1: object,
                            group2: object = None, c: Optional[ArrayLike] = None,
                            n_draws: int = 5000, delta: float = 0.25,
                            pseudocount: Optional[float] = None, seed: int = 0,
                            mode: str = "change", test_mode: str = "three",
                            threshold_counts: float = 0.01,
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
        one latent sample each); draws are paired in order. 5000 as
        scvi-tools' ``n_samples_overall``.
    delta : float, >= 0
        The smallest |log2 fold change| that counts as a change.
    pseudocount : float, > 0, optional
        Added to the expression before the logarithm; None (default):
        ``estimate_pseudocount`` from the genes whose mean count in a group
        is below `threshold_counts`.
    test_mode : {"three", "two"}
        "three" (default, as scvi-tools): proba_de is the larger of
        P(LFC >= delta) and P(LFC < -delta); "two": their sum,
        P(|LFC| > delta).
    threshold_counts : float, >= 0
        A group's mean count below which a gene counts as not expressed.
    seed : int
        Seeds the choice of cells and the latent draws.
    mode : {"change", "vanilla"}
        Which hypothesis ``bayes_factor`` weighs (the names of scvi-tools'
        modes): "change", a change beyond delta (see test_mode) against none; "vanilla",
        h1 > h2 against h1 <= h2 (with ``proba_m1`` = P(h1 > h2) and
        ``proba_m2`` = 1 - proba_m1).

    Returns
    -------
    dict of ndarray, shape (n_features,) each
        ``proba_de`` (see test_mode), ``proba_not_de`` (1 - proba_de),
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
    if test_mode not in ("two", "three"):
        raise ValueError(f"test_mode must be 'two' or 'three', got {test_mode!r}")
    delta = as_float(delta, "delta", minimum=0.0)
    if pseudocount is not None:
        pseudocount = as_float(pseudocount, "pseudocount", minimum=0.0, open_min=True)
    threshold_counts = as_float(threshold_counts, "threshold_counts", minimum=0.0)
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
    if pseudocount is None:
        pseudocount = estimate_pseudocount(h1, h2,
                                           _group_mean(X, rows1) < threshold_counts,
                                           _group_mean(X, rows2) < threshold_counts)
    return summarise(h1, h2, delta, pseudocount, mode, test_mode)


def _log_odds(p: NDArray[Any], eps: float = 1e-8) -> NDArray[Any]:
    """log(p + eps) - log(1 - p + eps): eps keeps p = 0 or 1 finite."""
    return np.log(p + eps) - np.log(1.0 - p + eps)
