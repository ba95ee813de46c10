"""Dense-layer products on the fused GEMM core: linear, linear_backward, matmul.

Matrices are float32 with contiguous rows; anything else (float64, integers,
Fortran order, transposed views) is converted first. Row slices of a bigger
matrix, such as the mu and logvar halves of one head output, are used in
place with their row stride. NaN and infinity propagate as in NumPy: these
are kernels, and a full finiteness scan would cost as much as the work.
"""

import numpy as np

from . import _core
from ._validation import as_float32_array, check_out, has_unit_rows

__all__ = ["linear", "linear_backward", "matmul"]

_ACTIVATIONS = (None, "relu")


def _matrix(value, name):
    return as_float32_array(value, name, ndim=2, allow_empty=True, finite=False,
                            row_strided=True)


def _vector(value, name, length):
    arr = as_float32_array(value, name, ndim=1, allow_empty=True, finite=False)
    if arr.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length},), got {arr.shape}")
    return arr


def _activation(activation):
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be None or 'relu', got {activation!r}")
    return activation == "relu"


def _output(out, name, shape):
    """A fresh output, or the caller's (float32, rows contiguous, writeable)."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if isinstance(out, np.ndarray) and has_unit_rows(out) and out.shape == tuple(shape) \
            and out.flags.writeable:
        return out
    return check_out(out, name, shape)


def linear(x, W, b=None, activation=None, out=None):
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

    Returns
    -------
    y : ndarray, shape (batch, out_features), float32
    """
    relu = _activation(activation)
    x = _matrix(x, "x")
    W = _matrix(W, "W")
    if x.shape[1] != W.shape[0]:
        raise ValueError(f"x has {x.shape[1]} features but W expects {W.shape[0]} "
                         f"(x shape {x.shape}, W shape {W.shape})")
    if b is not None:
        b = _vector(b, "b", W.shape[1])
    y = _output(out, "out", (x.shape[0], W.shape[1]))
    _core.gemm_linear_forward(x, W, b, relu, y)
    return y


def linear_backward(x, W, dy, y=None, activation=None, need_dx=True):
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

    Returns
    -------
    dx : ndarray (batch, in_features) or None
        ``dz @ W.T`` where ``dz = dy * (y > 0)`` (or ``dy``).
    dW : ndarray (in_features, out_features)
        ``x.T @ dz``.
    db : ndarray (out_features,)
        Column sums of ``dz``, computed in the same pass as ``dW``.
    """
    relu = _activation(activation)
    x = _matrix(x, "x")
    W = _matrix(W, "W")
    dy = _matrix(dy, "dy")
    batch, n_in = x.shape
    if W.shape[0] != n_in:
        raise ValueError(f"W must have {n_in} rows to match x, got shape {W.shape}")
    n_out = W.shape[1]
    if dy.shape != (batch, n_out):
        raise ValueError(f"dy must have shape {(batch, n_out)}, got {dy.shape}")
    if relu:
        if y is None:
            raise ValueError("y is required with activation='relu'")
        y = _matrix(y, "y")
        if y.shape != dy.shape:
            raise ValueError(f"y must have shape {dy.shape}, got {y.shape}")
        dz = np.where(y > 0, dy, np.float32(0))  # the ReLU mask, one pass
    else:
        dz = dy
    dW = np.empty((n_in, n_out), dtype=np.float32)
    db = np.empty(n_out, dtype=np.float32)
    _core.gemm_linear_backward_weight(x, dz, dW, db, False)
    dx = None
    if need_dx:
        dx = np.empty((batch, n_in), dtype=np.float32)
        _core.gemm_linear_backward_input(dz, W, None, dx)
    return dx, dW, db


def matmul(a, b, trans_a=False, trans_b=False, out=None):
    """``op(a) @ op(b)`` on the SIMD GEMM, where op transposes if asked.

    Parameters
    ----------
    a : array_like, shape (M, K), or (K, M) with ``trans_a``
    b : array_like, shape (K, N), or (N, K) with ``trans_b``
    trans_a, trans_b : bool
        Use the transpose without copying it.
    out : ndarray, shape (M, N), float32, optional

    Returns
    -------
    c : ndarray, shape (M, N), float32
    """
    a = _matrix(a, "a")
    b = _matrix(b, "b")
    M, Ka = (a.shape[1], a.shape[0]) if trans_a else a.shape
    Kb, N = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if Ka != Kb:
        raise ValueError(f"inner dimensions differ: op(a) is {(M, Ka)}, op(b) is {(Kb, N)}")
    c = _output(out, "out", (M, N))
    _core.gemm_matmul(a, b, bool(trans_a), bool(trans_b), c, False)
    return c
