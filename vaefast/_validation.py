"""Argument checks shared by the public API.

Every rejection is an exception whose message names the offending argument.
Accepted arrays are converted to C-contiguous float32 (a copy only when
needed), so the C core sees one layout.
"""

import numbers
import operator

from typing import Any, Iterable, NoReturn, Optional, Sequence, Union

import numpy as np
from numpy.typing import NDArray

from . import _core
from ._typing import F32
from ._spec import likelihoods


class Float32OverflowError(ValueError, OverflowError):
    """Raised by the kernels when every input is finite but the result is
    beyond float32's range (exported as vaefast.ops.Float32OverflowError)."""


def has_unit_rows(arr: "NDArray[Any]") -> bool:
    """True if a 2-D float32 array's rows are contiguous and evenly spaced
    forward in memory (a row slice of a bigger matrix), so C can take it
    with a leading dimension and no copy."""
    if arr.ndim != 2 or arr.dtype != np.float32:
        return False
    return _core.row_leading_dimension(*arr.shape, *arr.strides) >= 0


def as_float32_array(value: object, name: str, ndim: Union[int, Sequence[int], None] = None,
                     allow_empty: bool = False, finite: bool = True,
                     row_strided: bool = False) -> F32:
    """Return `value` as a C-contiguous float32 ndarray, or raise.

    Parameters
    ----------
    value : array_like
        Numeric data (bool, integer or floating).
    name : str
        Argument name used in error messages.
    ndim : int or tuple of int, optional
        Required number of dimensions.
    allow_empty : bool
        Whether a zero-sized array is acceptable.
    finite : bool
        Reject NaN and infinity.
    row_strided : bool
        Accept, without copying, a 2-D float32 array whose rows are
        contiguous but spaced apart (see has_unit_rows).
    """
    if (type(value) is np.ndarray and value.dtype == np.float32
            and (ndim is None or value.ndim == ndim)
            and (allow_empty or value.size)
            and (value.flags.c_contiguous or (row_strided and has_unit_rows(value)))):
        # fast path: already what the C core takes (batch-1 inference lives here)
        return require_finite(value, name) if finite else value
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(d) for d in allowed)
            raise ValueError(f"{name} must be {want}-dimensional, got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating) and arr.dtype.itemsize > 4:
        with np.errstate(over="ignore"):
            converted = arr.astype(np.float32)
        if finite and np.isfinite(arr).all() and not np.isfinite(converted).all():
            raise ValueError(f"{name} has values too large for float32")
        arr = converted
    if not (row_strided and has_unit_rows(arr)):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
    if finite and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def check_out(out: object, name: str, shape: Sequence[int]) -> F32:
    """Validate a caller-supplied output array (float32, C-contiguous, `shape`)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != np.float32:
        raise TypeError(f"{name} must have dtype float32, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    return out


def as_int(value: object, name: str, minimum: Optional[int] = None) -> int:
    """Return `value` as a Python int (bools rejected), checking `minimum`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = operator.index(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def as_float(value: object, name: str, minimum: Optional[float] = None,
             maximum: Optional[float] = None, open_min: bool = False) -> float:
    """Return `value` as a finite Python float inside the given bounds."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value < minimum or (open_min and value == minimum)):
        op = ">" if open_min else ">="
        raise ValueError(f"{name} must be {op} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def as_seed(value: object, name: str = "seed") -> int:
    """A seed is an integer in [0, 2**64)."""
    value = as_int(value, name, minimum=0)
    if value >= 2**64:
        raise ValueError(f"{name} must be < 2**64, got {value}")
    return value


_SMALL = 4096  # elements; below this require_finite tests directly


def require_finite(arr: F32, name: str) -> F32:
    """Raise ValueError naming `name` if the float32 array holds NaN or infinity.

    One float32 sum is a single read pass with no temporary: finite data
    almost always sums to a finite value, and only when it does not (a
    NaN/inf, or a sum that overflows) is the exact element-wise test run.
    Small arrays (batch-1 inference) take the exact test at once: on a few
    thousand elements it is cheaper than the errstate context of the sum.
    """
    if arr.size <= _SMALL:
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinity")
        return arr
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(arr, axis=None, dtype=np.float32)
    if not np.isfinite(total) and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def reject_nonfinite(args: Iterable[tuple[str, object, Optional[F32]]]) -> None:
    """Raise for the first (name, given, converted) whose converted array has
    a NaN or infinity; return if none does. `given` is what the caller
    passed: if it was finite, the conversion to float32 overflowed. Slow
    path: the kernels check their (small) results instead of scanning every
    input, and only on failure are the inputs searched for the one to name.
    """
    for name, given, arr in args:
        if arr is None or np.isfinite(arr).all():
            continue
        if arr is not given and np.isfinite(np.asarray(given, dtype=np.float64)).all():
            raise ValueError(f"{name} has values too large for float32")
        raise ValueError(f"{name} contains NaN or infinity")


def nonfinite_result(what: str, args: Sequence[tuple[str, object, Optional[F32]]]) -> NoReturn:
    """A kernel's result came out NaN/Inf: name the input, or, when every
    input is finite, report that the result is beyond float32's range."""
    reject_nonfinite(args)
    names = ", ".join(name for name, _, arr in args if arr is not None)
    raise Float32OverflowError(f"{what} overflows float32 (all of {names} are finite)")


def check_targets(X: F32, likelihood: str, name: str = "X") -> F32:
    """Raise ValueError naming `name` if the float32 array X is outside the
    targets of `likelihood` (its registry record says which). Returns X."""
    return likelihoods.get(likelihood).check_targets(X, name)


def as_weight(value: object, name: str) -> F32:
    """One array of a weight dict (any shape, may be empty), as float32."""
    return as_float32_array(value, name, allow_empty=True)


def as_size_factors(value: object, n: int, name: str = "size_factors") -> F32:
    """Per-row size factors: n finite values > 0, as a float32 vector."""
    s = as_float32_array(value, name, ndim=1)
    if s.shape[0] != n:
        raise ValueError(f"{name} must have {n} entries (one per row), got {s.shape[0]}")
    if not (s > 0).all():
        raise ValueError(f"{name} must be > 0, got a minimum of {s.min()}")
    return s


def as_widths(value: object, name: str) -> tuple[int, ...]:
    """Layer widths: an int or a sequence of ints >= 1, as a tuple; TypeError/
    ValueError naming `name`."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    try:
        widths: tuple[object, ...] = tuple(value)  # type: ignore[arg-type]  # else TypeError
    except TypeError:
        raise TypeError(f"{name} must be a sequence of positive integers") from None
    return tuple(as_int(w, f"{name}[{i}]", minimum=1) for i, w in enumerate(widths))


def noise_generator(seed: "int | np.random.Generator | None") -> np.random.Generator:
    """The generator of elbo/log_likelihood noise: rows draw from it in order."""
    if isinstance(seed, np.random.Generator):
        return seed  # vaefast.dask hands each chunk one advanced to its rows
    return np.random.default_rng(None if seed is None else as_seed(seed))
