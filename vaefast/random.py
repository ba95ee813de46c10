"""Counter-based random numbers (Philox4x32-10) and normal variates.

Everything here is a pure function of its arguments: there is no hidden
state, so a value can be regenerated anywhere (another thread, a resumed run)
from its seed and index alone.

Counter layout (key = the seed's two 32-bit halves, low half first):

* ``normal(seed, shape, offset)``: element ``k = offset + i`` (flat, C order)
  is lane ``k % 4`` of Philox block ``b = k // 4``, counter
  ``(b & 0xffffffff, b >> 32, 0, 0)``.
* the reparameterization noise (``vaefast.ops.reparameterization_noise``)
  uses counter ``(row, 0x80000000 | col // 4, step & 0xffffffff, step >> 32)``;
  bit 31 of the second word tells the two streams apart, so they never
  share a Philox block.

A block ``(x0, x1, x2, x3)`` gives four normals by two Box-Muller pairs,
``(x0, x1)`` and ``(x2, x3)``: ``u = float32(x_r)·2**-32 + 2**-33`` (in
(0, 1], never 0), ``r = sqrt(-2 ln u)``, ``theta = 2π·(x_a >> 8)·2**-24``,
giving ``(r cos theta, r sin theta)``. The largest possible |value| is
``sqrt(66 ln 2) ≈ 6.76``. See ``vaefast.reference`` for the NumPy twin.
"""

from typing import Sequence, Union

import numpy as np
from numpy.typing import NDArray

from . import _core
from ._typing import ArrayLike, F32
from ._validation import as_int, as_seed

__all__ = ["philox4x32", "normal"]

# Bound on |z - z64| / max(1, |z64|) between this float32 implementation
# (any kernel set) and the float64 twin on the same uniforms; observed max
# 2.2e-7 (tests/test_random.py::test_normal_matches_float64_twin).
NORMAL_REL_TOL = 5e-7


def _as_uint32(value: ArrayLike, name: str, last: int) -> NDArray[np.uint32]:
    arr = np.asarray(value)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.shape[-1] != last:
        raise ValueError(f"{name} must have shape (..., {last}), got {arr.shape}")
    if arr.dtype != np.uint32:
        if arr.size and (arr.min() < 0 or arr.max() > 0xFFFFFFFF):
            raise ValueError(f"{name} values must be in [0, 2**32)")
        arr = arr.astype(np.uint32)
    return arr


def philox4x32(counter: ArrayLike, key: ArrayLike) -> NDArray[np.uint32]:
    """Philox4x32-10 block function (Salmon et al., SC'11; Random123).

    Parameters
    ----------
    counter : array_like of uint32, shape (..., 4)
        Counter words, least significant first.
    key : array_like of uint32, shape (..., 2)
        Key words. The leading dimensions of ``counter`` and ``key``
        broadcast against each other.

    Returns
    -------
    numpy.ndarray of uint32, shape (broadcast leading dims..., 4)
    """
    ctr = _as_uint32(counter, "counter", 4)
    k = _as_uint32(key, "key", 2)
    try:
        lead = np.broadcast_shapes(ctr.shape[:-1], k.shape[:-1])
    except ValueError:
        raise ValueError(f"counter {ctr.shape} and key {k.shape} leading "
                         "dimensions do not broadcast") from None
    ctr = np.ascontiguousarray(np.broadcast_to(ctr, lead + (4,))).reshape(-1, 4)
    k = np.ascontiguousarray(np.broadcast_to(k, lead + (2,))).reshape(-1, 2)
    out = np.empty((ctr.shape[0], 4), dtype=np.uint32)
    _core.philox4x32_10(ctr, k, out)
    return out.reshape(lead + (4,))


def normal(seed: int, shape: Union[int, Sequence[int]], offset: int = 0) -> F32:
    """Standard normal variates, a pure function of (seed, offset + i).

    Parameters
    ----------
    seed : int in [0, 2**64)
        Stream key.
    shape : int or tuple of int
        Output shape; elements are numbered in flat C order.
    offset : int in [0, 2**64)
        Index of the first element in the stream, so
        ``normal(s, (10,))`` equals
        ``concatenate([normal(s, (4,)), normal(s, (6,), offset=4)])``.

    Returns
    -------
    numpy.ndarray of float32

    Notes
    -----
    Identical for every thread count and chunking. Between kernel sets
    (generic / avx2 / avx512 / neon) values agree to float32 rounding of the
    ln/sin/cos polynomials: every set satisfies
    ``|z - z64| <= 5e-7 * max(1, |z64|)`` against the float64 twin
    (``vaefast.reference``; observed max 2.2e-7), so two sets differ by at
    most twice that.
    """
    seed = as_seed(seed, "seed")
    offset = as_seed(offset, "offset")
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(as_int(s, "shape", minimum=0)
                      for s in shape)  # type: ignore[union-attr]  # bool: TypeError here
    except TypeError:
        raise TypeError(f"shape must be an int or a tuple of ints, got {shape!r}") from None
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if n and offset + n > 2**64:
        raise ValueError(f"offset + size must be <= 2**64, got {offset} + {n}")
    out = np.empty(n, dtype=np.float32)
    _core.normal_fill(seed, offset, out)
    return out.reshape(shape)
