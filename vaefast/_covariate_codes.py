"""Validation of categorical covariate codes (shared by vaefast.ops and the model).

A row's categorical covariates are integer codes, one column per covariate
(the batch first); covariate k has ``levels[k]`` categories and its codes
lie in [0, levels[k]). A user never builds the one-hot matrix.
"""

from typing import Sequence, Union

import numpy as np
from numpy.typing import NDArray

from ._validation import as_int

I32 = NDArray[np.int32]
I64 = NDArray[np.int64]

# The C core takes int32 codes and offsets its stacked table in int64.
MAX_LEVELS = 2**31 - 1


def as_levels(levels: Union[int, Sequence[int]], name: str = "levels") -> I64:
    """``levels`` (an int for one covariate, or one int per covariate) as int64 (K,)."""
    seq = [levels] if isinstance(levels, (int, np.integer)) else list(levels)
    out = [as_int(n, f"{name}[{k}]", minimum=1) for k, n in enumerate(seq)]
    for k, n in enumerate(out):
        if n > MAX_LEVELS:
            raise ValueError(f"{name}[{k}] must be at most {MAX_LEVELS}, got {n}")
    return np.asarray(out, dtype=np.int64).reshape(len(out))


def as_codes(codes: object, levels: I64, rows: int, name: str = "codes") -> I32:
    """``codes`` ((M,) for one covariate, or (M, K)) as C-contiguous int32 (M, K).

    Raises TypeError for a non-integer array (a float array is accepted only
    if every value is a whole number) and ValueError, naming the argument and
    the covariate, for a wrong shape or a code outside [0, levels[k]).
    """
    try:
        arr = np.asarray(codes)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} could not be converted to an array: {exc}") from None
    K = levels.shape[0]
    if arr.ndim == 1 and K == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape != (rows, K):
        raise ValueError(f"{name} must have shape ({rows}, {K}) (one integer code per row "
                         f"and covariate), got {arr.shape}")
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer)
                                     or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must hold integer codes, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and arr.size and not (
            np.isfinite(arr).all() and (arr == np.floor(arr)).all()):
        raise TypeError(f"{name} must hold integer codes, got non-integer values")
    for k in range(K):
        col = arr[:, k]
        if col.size and (col.min() < 0 or col.max() >= levels[k]):
            bad = col[(col < 0) | (col >= levels[k])][0]
            raise ValueError(f"{name}[:, {k}] must lie in [0, {levels[k]}), got {bad}")
    return np.ascontiguousarray(arr, dtype=np.int32)
