"""Categorical covariates of a layer: a gather-add and its scatter-add gradient.

A layer with K categorical covariates computes
``act(x·W + b + Σ_k table[off_k + codes[:, k]])``: the one-hot product
``onehot(codes)·table`` as an index into the table's rows (csrc/covariates.c).
Covariate k owns rows ``off_k .. off_k + levels[k] - 1`` of the stacked
table, ``off_k = levels[0] + … + levels[k-1]``. The float64 twin is
``vaefast.reference.covariates``.
"""

from typing import Literal, Optional, Sequence, Union

import numpy as np

from .. import _core
from .._covariate_codes import as_codes, as_levels
from .._typing import ArrayLike, F32
from .._validation import as_float32_array, check_out, nonfinite_result

__all__ = ["covariate_gather_add", "covariate_scatter_add"]


def _table_rows(levels: np.ndarray) -> int:
    return int(levels.sum())


def covariate_gather_add(y: ArrayLike, codes: ArrayLike, levels: Union[int, Sequence[int]],
                         table: ArrayLike, activation: Literal["none", "relu"] = "none",
                         out: Optional[F32] = None) -> F32:
    """``act(y + Σ_k table[off_k + codes[:, k]])``.

    Parameters
    ----------
    y : array_like, shape (M, N)
        Pre-activations (e.g. ``x·W + b``).
    codes : array_like of int, shape (M,) or (M, K)
        Each row's category of each covariate, in [0, levels[k]).
    levels : int or sequence of int
        Categories per covariate (K of them, each >= 1).
    table : array_like, shape (sum(levels), N)
        The covariates' weight rows, stacked in covariate order.
    activation : {"none", "relu"}
    out : ndarray, float32, shape (M, N), optional
        Written in place (may be ``y`` itself if ``y`` is float32 C-contiguous).

    Returns
    -------
    ndarray, float32, shape (M, N)
    """
    if activation not in ("none", "relu"):
        raise ValueError(f"activation must be 'none' or 'relu', got {activation!r}")
    yv = as_float32_array(y, "y", ndim=2, allow_empty=True)
    M, N = yv.shape
    lv = as_levels(levels)
    cv = as_codes(codes, lv, M)
    tv = as_float32_array(table, "table", ndim=2, allow_empty=True)
    if tv.shape != (_table_rows(lv), N):
        raise ValueError(f"table must have shape ({_table_rows(lv)}, {N}), got {tv.shape}")
    res = check_out(out, "out", (M, N)) if out is not None else np.empty((M, N), np.float32)
    if res is not yv:
        res[...] = yv
    try:
        _core.cov_gather_add_into(cv, lv, tv, activation == "relu", res)
    except _core.NonFiniteError:
        nonfinite_result("covariate_gather_add", [("y", y, yv), ("table", table, tv)])
    return res


def covariate_scatter_add(dy: ArrayLike, codes: ArrayLike, levels: Union[int, Sequence[int]],
                          y: Optional[ArrayLike] = None, out: Optional[F32] = None,
                          accumulate: bool = False) -> F32:
    """The table's gradient ``onehot(codes)ᵀ·dz`` as a scatter-add of dz's rows.

    dz is the pre-activation's gradient: ``dy`` itself, or, with the ReLU's
    forward output ``y``, ``dy`` where ``y > 0`` (0 elsewhere).

    Parameters
    ----------
    dy : array_like, shape (M, N)
        Gradient of the loss w.r.t. the pre-activations.
    codes, levels
        As for :func:`covariate_gather_add`.
    y : array_like, shape (M, N), optional
        The layer's output after a ReLU (None: no activation).
    out : ndarray, float32, shape (sum(levels), N), optional
        Written in place.
    accumulate : bool
        Add to ``out`` (which must be given) instead of overwriting it.

    Returns
    -------
    ndarray, float32, shape (sum(levels), N)
        Bit-identical for any thread count (each entry is summed over the
        rows in order).
    """
    dv = as_float32_array(dy, "dy", ndim=2, allow_empty=True)
    M, N = dv.shape
    lv = as_levels(levels)
    cv = as_codes(codes, lv, M)
    shape = (_table_rows(lv), N)
    if accumulate and out is None:
        raise ValueError("accumulate=True needs out")
    yv = None
    if y is not None:
        yv = as_float32_array(y, "y", ndim=2, allow_empty=True)
        if yv.shape != dv.shape:
            raise ValueError(f"y must have the shape of dy {dv.shape}, got {yv.shape}")
    res = check_out(out, "out", shape) if out is not None else np.empty(shape, np.float32)
    _core.cov_scatter_add_into(cv, lv, dv, yv, res, bool(accumulate))
    return res
