"""NumPy twin of the categorical covariates' kernels (csrc/covariates.c).

Covariate k (of K) has ``levels[k]`` categories; its weight rows are
``off_k .. off_k + levels[k] - 1`` of one stacked table (R×N), with
``off_k = levels[0] + … + levels[k-1]``. Written as the one-hot product it
stands for, so it is an independent check of the gather/scatter kernels::

    gather_add:   y + onehot(codes) · table          (M×N)
    scatter_add:  onehot(codes)ᵀ · dy                (R×N)

``onehot(codes)`` (M×R) has a 1 in column off_k + codes[i, k] of row i for
every k. Works in the dtype of its float inputs (float64 for the oracle).
"""

from typing import Any, Optional, Sequence

import numpy as np
from numpy.typing import DTypeLike, NDArray

Array = NDArray[Any]


def onehot(codes: Array, levels: Sequence[int], dtype: DTypeLike = np.float64) -> Array:
    """The (M, Σ levels) indicator matrix of integer codes (M, K)."""
    codes = np.asarray(codes).reshape(len(codes), len(levels))
    offsets = np.concatenate([[0], np.cumsum(levels)[:-1]]).astype(np.int64)
    out: Array = np.zeros((codes.shape[0], int(np.sum(levels))), dtype=dtype)
    rows = np.arange(codes.shape[0])
    for k in range(len(levels)):
        out[rows, offsets[k] + codes[:, k]] = 1
    return out


def gather_add(y: Array, codes: Array, levels: Sequence[int], table: Array,
               activation: str = "none") -> Array:
    """act(y + onehot(codes)·table); activation "none" or "relu"."""
    pre: Array = y + onehot(codes, levels, table.dtype) @ table
    return np.maximum(pre, 0) if activation == "relu" else pre


def scatter_add(dy: Array, codes: Array, levels: Sequence[int],
                y: Optional[Array] = None) -> Array:
    """onehot(codes)ᵀ·dz: the table's gradient from the pre-activation's, dz =
    dy, or dy where the ReLU output y > 0."""
    dz = dy if y is None else np.where(y > 0, dy, 0).astype(dy.dtype, copy=False)
    out: Array = onehot(codes, levels, dy.dtype).T @ dz
    return out
