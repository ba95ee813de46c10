"""Validation of categorical covariate codes (shared by vaefast.ops and the model).

A row's categorical covariates are integer codes, one column per covariate
(the batch first); covariate k has ``levels[k]`` categories and its codes
lie in [0, levels[k]). A user never builds the one-hot matrix.
"""

from typing import Any, Optional, Sequence, Union

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


# ---- a model's per-row side inputs (vaefast/model.py's codes=)
# The core takes a call's conditions as c, or as the pair (c or None, codes)
# for a model with categorical covariates (vaefast/_model.pxi _Rows).
Side = Union[None, NDArray[np.float32], tuple[Optional[NDArray[np.float32]], I32]]


def model_codes(codes: object, levels: I64, rows: int, name: str = "codes") -> Optional[I32]:
    """A model's codes of `rows` rows: required (rows, K) when it has K > 0
    categorical covariates (``levels``), refused when it has none."""
    if levels.shape[0] == 0:
        if codes is not None:
            raise ValueError(f"{name} was given but this VAE has no categorical covariates "
                             "(categorical_covariates=())")
        return None
    if codes is None:
        raise ValueError(f"{name} is required: this VAE has categorical covariates "
                         f"(categorical_covariates={levels.tolist()})")
    return as_codes(codes, levels, rows, name)


def side(c: Optional[NDArray[np.float32]], codes: Optional[I32]) -> Side:
    """The core's argument for checked conditions c and codes."""
    return c if codes is None else (c, codes)


def take(value: Side, rows: Any) -> Side:
    """Rows `rows` (a slice or an index array) of a side input, contiguous."""
    if value is None:
        return None
    if isinstance(value, tuple):
        c, codes = value
        return (None if c is None else np.ascontiguousarray(c[rows]),
                np.ascontiguousarray(codes[rows]))
    return np.ascontiguousarray(value[rows])


def repeat(value: Side, times: int) -> Side:
    """Each row of a side input `times` times in a row (np.repeat on axis 0)."""
    if value is None:
        return None
    if isinstance(value, tuple):
        c, codes = value
        return (None if c is None else np.repeat(c, times, axis=0),
                np.repeat(codes, times, axis=0))
    return np.repeat(value, times, axis=0)


def as_flag(value: object, name: str) -> bool:
    """A bool argument (True/False, NumPy's too), named when it is not one."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)
