"""Dense-layer products on the fused GEMM core: linear, linear_backward, matmul.

Matrices are float32 with contiguous rows; anything else (float64, integers,
Fortran order, transposed views) is converted first. Row slices of a bigger
matrix, such as the mu and logvar halves of one head output, are used in
place with their row stride.

NaN and infinity are rejected with a ValueError that names the argument
("W contains NaN or infinity"), without a separate scan of the inputs
(which would cost as much as the product at batch 32): the GEMM epilogue
checks every result before the activation (after the bias), and the bias
gradient, while they are in registers. Every non-finite input entry makes
at least one of those non-finite (NaN·0 = ∞·0 = ∞ − ∞ = NaN), so only when
the GEMM raises its flag are the inputs scanned, to name the culprit. If
they are all finite the result overflowed float32: Float32OverflowError (a
ValueError and an OverflowError) names the arguments. Either way `out` has
been overwritten. An empty product has no results to carry the check, so
its inputs are scanned directly. W in ``linear_backward(..., need_dx=False)``
is not read, and so not checked.

Plain float32 ndarrays go through a fast path in the binding that checks
layouts and shapes in C; everything else, and every error, takes the
checked Python path below.
"""

from typing import Literal, Optional, Sequence, TypeGuard

import numpy as np

from .. import _core
from .._typing import ArrayLike, F32
from ._bf16 import is_bf16
from .._validation import (as_float32_array, check_out, has_unit_rows, nonfinite_result,
                          reject_nonfinite)

__all__ = ["linear", "linear_backward", "matmul"]

_ACTIVATIONS = (None, "relu")
Activation = Optional[Literal["relu"]]
Precision = Literal["fp32", "bf16"]


_F32 = np.dtype(np.float32)  # builtin dtypes are singletons: test with `is`


def _takes_as_is(a: object) -> TypeGuard[F32]:
    """True for a 2-D float32 ndarray the core takes without a copy (rows
    contiguous and evenly spaced, see has_unit_rows)."""
    return type(a) is np.ndarray and has_unit_rows(a)


def _matrix(value: object, name: str) -> F32:
    if _takes_as_is(value):
        return value
    return as_float32_array(value, name, ndim=2, allow_empty=True, finite=False,
                            row_strided=True)


def _vector(value: object, name: str, length: int) -> F32:
    if (type(value) is np.ndarray and value.dtype is _F32 and value.ndim == 1
            and value.shape[0] == length and value.strides[0] == 4):
        return value
    arr = as_float32_array(value, name, ndim=1, allow_empty=True, finite=False)
    if arr.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length},), got {arr.shape}")
    return arr


def _activation(activation: object) -> bool:
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be None or 'relu', got {activation!r}")
    return activation == "relu"


def _relu_output(y: Optional[ArrayLike], dyv: F32) -> F32:
    """The layer's ReLU output y, which a ReLU backward needs (its mask),
    checked against dy's shape."""
    if y is None:
        raise ValueError("y is required with activation='relu'")
    yv = _matrix(y, "y")
    if yv.shape != dyv.shape:
        raise ValueError(f"y must have shape {dyv.shape}, got {yv.shape}")
    return yv


def _output(out: Optional[F32], name: str, shape: tuple[int, int]) -> F32:
    """A fresh output, or the caller's (float32, rows contiguous, writeable)."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if _takes_as_is(out) and out.shape == shape and out.flags.writeable:
        return out
    return check_out(out, name, shape)


def linear(x: ArrayLike, W: ArrayLike, b: Optional[ArrayLike] = None,
           activation: Activation = None, out: Optional[F32] = None,
           precision: Precision = "fp32") -> F32:
    """Dense layer forward pass: ``act(x @ W + b)`` in one fused GEMM.

    Bias and activation are applied in the GEMM's epilogue, while each output
    tile is still in registers, so the output is written once.

    Parameters
    ----------
    x : array_like, shape (batch, in_features)
    W : array_like, shape (in_features, out_features)
    b : array_like, shape (out_features,), optional
    activation : {None, "relu"}
    out : ndarray, shape (batch, out_features), float32, optional
        Where to write the result (its rows must be contiguous).
    precision : {"fp32", "bf16"}
        "bf16": x and W rounded to bfloat16, float32 accumulation
        (docs/precision.md); "fp32" is the default.

    Returns
    -------
    y : ndarray, shape (batch, out_features), float32
    """
    bf16 = precision != "fp32" and is_bf16(precision)
    if not bf16 and (activation is None or (type(activation) is str and activation == "relu")):
        y = _core.gemm_linear_ready(x, W, b, activation is not None, out)
        if y is not None:  # else: conversions, errors, empty or non-finite
            return y
    relu = _activation(activation)
    xv = _matrix(x, "x")
    Wv = _matrix(W, "W")
    if xv.shape[1] != Wv.shape[0]:
        raise ValueError(f"x has {xv.shape[1]} features but W expects {Wv.shape[0]} "
                         f"(x shape {xv.shape}, W shape {Wv.shape})")
    bv = None if b is None else _vector(b, "b", Wv.shape[1])
    y = _output(out, "out", (xv.shape[0], Wv.shape[1]))
    if bf16:
        if _core.gemm_bf16(xv, Wv, False, False, bv, relu, y):
            nonfinite_result("x @ W + b in bf16", [("x", x, xv), ("W", W, Wv), ("b", b, bv)])
    elif _core.gemm_linear_forward(xv, Wv, bv, relu, y):
        nonfinite_result("x @ W + b", [("x", x, xv), ("W", W, Wv), ("b", b, bv)])
    if y.size == 0:  # no result to carry the check
        reject_nonfinite([("x", x, xv), ("W", W, Wv), ("b", b, bv)])
    return y


def linear_backward(x: ArrayLike, W: ArrayLike, dy: ArrayLike, y: Optional[ArrayLike] = None,
                    activation: Activation = None, need_dx: bool = True,
                    precision: Precision = "fp32", dW: Optional[F32] = None,
                    db: Optional[F32] = None) -> tuple[Optional[F32], F32, F32]:
    """Gradients of ``y = act(x @ W + b)`` given ``dy = dL/dy``.

    Parameters
    ----------
    x : array_like, shape (batch, in_features)
        The layer's input.
    W : array_like, shape (in_features, out_features)
    dy : array_like, shape (batch, out_features)
    y : array_like, shape (batch, out_features), optional
        The forward output; required with ``activation="relu"``, where the
        gradient flows only through entries with ``y > 0``.
    activation : {None, "relu"}
    need_dx : bool
        Skip the input gradient (e.g. for the first layer).
    precision : {"fp32", "bf16"}
        "bf16": both products (dx, dW) with bf16 operands and float32
        accumulation; db stays a float32 column sum (docs/precision.md).
    dW : ndarray, shape (in_features, out_features), float32, optional
    db : ndarray, shape (out_features,), float32, optional
        Where to write the weight and bias gradients (C-contiguous); fresh
        arrays when omitted. A training loop that passes the same arrays
        every step saves the page faults of a new array (about 0.4 ms for
        a 1 MB dW on the development machine).

    Returns
    -------
    dx : ndarray (batch, in_features) or None
        ``dz @ W.T`` where ``dz = dy * (y > 0)`` (or ``dy``).
    dW : ndarray (in_features, out_features)
        ``x.T @ dz``.
    db : ndarray (out_features,)
        Column sums of ``dz``, computed in the same pass as ``dW``.

    The ReLU mask is applied while each GEMM packs ``dy``, so ``dz`` is
    never stored. With the mask, a NaN/Inf in ``dy`` or ``y`` is rejected
    even where ``y <= 0``; W is not read (nor checked) without ``need_dx``.
    """
    bf16 = precision != "fp32" and is_bf16(precision)
    if not bf16 and (activation is None or (type(activation) is str and activation == "relu")):
        grads = _core.gemm_linear_backward_ready(x, W, dy, y, activation is not None,
                                                 bool(need_dx), dW, db)
        if grads is not None:  # else: conversions, errors, empty or non-finite
            return grads
    relu = _activation(activation)
    xv = _matrix(x, "x")
    Wv = _matrix(W, "W")
    dyv = _matrix(dy, "dy")
    batch, n_in = xv.shape
    if Wv.shape[0] != n_in:
        raise ValueError(f"W must have {n_in} rows to match x, got shape {Wv.shape}")
    n_out = Wv.shape[1]
    if dyv.shape != (batch, n_out):
        raise ValueError(f"dy must have shape {(batch, n_out)}, got {dyv.shape}")
    yv = _relu_output(y, dyv) if relu else None
    args = [("x", x, xv), ("W", W, Wv if need_dx else None), ("dy", dy, dyv), ("y", y, yv)]
    dW = np.empty((n_in, n_out), np.float32) if dW is None else check_out(
        dW, "dW", (n_in, n_out))
    db = np.empty(n_out, np.float32) if db is None else check_out(db, "db", (n_out,))
    if bf16:
        return _backward_bf16(xv, Wv, dyv, yv, need_dx, args, dW, db)
    # db (a column sum of every dz entry) carries the check of dy and y,
    # dW that of x, dx that of W.
    if _core.gemm_linear_backward_weight(xv, dyv, dW, db, False, yv):
        nonfinite_result("the gradient x.T @ dz", args)
    dx: Optional[F32] = None
    if need_dx:
        dx = np.empty((batch, n_in), dtype=np.float32)
        if _core.gemm_linear_backward_input(dyv, Wv, None, dx, yv):
            nonfinite_result("the gradient dz @ W.T", args)
    if batch == 0 or n_out == 0:  # empty products check nothing
        reject_nonfinite(args)
    return dx, dW, db


def matmul(a: ArrayLike, b: ArrayLike, trans_a: bool = False, trans_b: bool = False,
           out: Optional[F32] = None, precision: Precision = "fp32") -> F32:
    """``op(a) @ op(b)`` on the SIMD GEMM, where op transposes if asked.

    Parameters
    ----------
    a : array_like, shape (M, K), or (K, M) with ``trans_a``
    b : array_like, shape (K, N), or (N, K) with ``trans_b``
    trans_a, trans_b : bool
        Use the transpose without copying it.
    out : ndarray, shape (M, N), float32, optional
    precision : {"fp32", "bf16"}
        "bf16": both operands rounded to bfloat16, float32 accumulation
        (docs/precision.md); "fp32" is the default.

    Returns
    -------
    c : ndarray, shape (M, N), float32
    """
    bf16 = precision != "fp32" and is_bf16(precision)
    if not bf16:
        c = _core.gemm_matmul_ready(a, b, bool(trans_a), bool(trans_b), out)
        if c is not None:  # else: conversions, errors, empty or non-finite
            return c
    av = _matrix(a, "a")
    bv = _matrix(b, "b")
    M, Ka = (av.shape[1], av.shape[0]) if trans_a else av.shape
    Kb, N = (bv.shape[1], bv.shape[0]) if trans_b else bv.shape
    if Ka != Kb:
        raise ValueError(f"inner dimensions differ: op(a) is {(M, Ka)}, op(b) is {(Kb, N)}")
    c = _output(out, "out", (M, N))
    if bf16:
        if _core.gemm_bf16(av, bv, bool(trans_a), bool(trans_b), None, False, c):
            nonfinite_result("a @ b in bf16", [("a", a, av), ("b", b, bv)])
    elif _core.gemm_matmul(av, bv, bool(trans_a), bool(trans_b), c, False):
        nonfinite_result("a @ b", [("a", a, av), ("b", b, bv)])
    if c.size == 0:
        reject_nonfinite([("a", a, av), ("b", b, bv)])
    return c


def _backward_bf16(xv: F32, Wv: F32, dyv: F32, yv: Optional[F32], need_dx: bool,
                   args: Sequence[tuple[str, object, Optional[F32]]], dW: F32, db: F32
                   ) -> tuple[Optional[F32], F32, F32]:
    """linear_backward's precision="bf16" route: dz = dy ⊙ [y > 0] formed
    here (the bf16 GEMM has no mask in its packing), dW = xᵀ·dz and
    dx = dz·Wᵀ in bf16, db the column sums of dz in float64, stored as
    float32. The inputs are scanned first (NaN/Inf in dy or y counts even
    where the mask is 0, as on the float32 route)."""
    reject_nonfinite(args)
    dz = dyv if yv is None else np.where(yv > 0, dyv, np.float32(0.0))
    if _core.gemm_bf16(xv, dz, True, False, None, False, dW):
        nonfinite_result("the gradient x.T @ dz in bf16", args)
    db[...] = dz.sum(axis=0, dtype=np.float64)
    dx: Optional[F32] = None
    if need_dx:
        dx = np.empty((dz.shape[0], Wv.shape[0]), dtype=np.float32)
        if _core.gemm_bf16(dz, Wv, False, True, None, False, dx):
            nonfinite_result("the gradient dz @ W.T in bf16", args)
    return dx, dW, db
