"""The first layer on sparse input: ``act(T(x) @ W + b)`` and its weight
gradient with x a CSR batch (cells × genes counts), computed from the
stored entries only.

x is a CSR matrix (scipy.sparse, a :class:`~vaefast._sparse_batch.CSRBatch`
from :func:`gather_csr_rows`, or anything with ``format == "csr"`` and
data/indices/indptr/shape; CSC is converted per call). T is None or
``"log1p"``, log(1 + v) applied to the stored values (zeros stay zero;
within 2.5 float32 ulps of the exact log1p, by the kernel set's vector log,
so not the same bits as the model's dense encoder input, which uses logf).
Column indices must be sorted and unique within each row; values finite,
and >= 0 with log1p. Each rule broken is a
ValueError naming the array (``x.indices``, ``x.data``, ...).

Numerics. Every output entry is one float32 sum of its row's (or column's)
non-zero terms in storage order, one multiply-add each, so its error
against the exact value is at most ``(nnz + 4) · eps · Σ|terms|`` (eps =
2^-24, nnz the terms in that sum, Σ over them and the bias; the 4 covers
the bias and the transform), the bound of the dense product with its zero
terms dropped (tests/test_csr.py). Results are bit-identical for any thread count.

NaN/Inf in W, b, dy or y is found from the results, as in
:mod:`vaefast.ops._linear`: the forward's pre-activation values and the
gradient's dW and db are checked in the kernel, and only then are the inputs
scanned to name one. Rows of W that no stored entry of x refers to are not
read, and so not checked.
"""

from typing import Literal, Optional

import numpy as np

from .. import _core
from .._sparse_batch import CSRParts
from .._typing import ArrayLike, F32, SparseMatrix
from ._linear import Activation
from ._linear import _activation, _matrix, _output, _relu_output, _vector
from .._sparse_batch import csr_parts, explain_bad_csr, gather_csr_rows, gather_dense_rows
from .._validation import check_out, nonfinite_result

Transform = Optional[Literal["log1p"]]

__all__ = ["sparse_linear", "sparse_linear_weight_grad", "gather_csr_rows",
           "gather_dense_rows"]


def _transform(transform: Optional[str]) -> int:
    try:
        return _core.CSR_TRANSFORMS[transform]
    except (KeyError, TypeError):
        raise ValueError(f"transform must be None or 'log1p', got {transform!r}") from None


def _status(status: int, parts: CSRParts, transform: Optional[str]) -> bool:
    """Raise for a broken CSR rule (VF_ERR_ARG); True for VF_ERR_NONFINITE."""
    if status == _core.CSR_STATUS_ARG:
        data, indices, indptr, (_, cols) = parts
        explain_bad_csr(data, indices, indptr, cols, transform)
    return status == _core.CSR_STATUS_NONFINITE


def sparse_linear(x: SparseMatrix, W: ArrayLike, b: Optional[ArrayLike] = None,
                  activation: Activation = None, transform: Transform = None,
                  out: Optional[F32] = None) -> F32:
    """``act(T(x) @ W + b)`` for a CSR batch x, without densifying it.

    Parameters
    ----------
    x : CSR matrix, shape (batch, in_features)
    W : array_like, shape (in_features, out_features)
    b : array_like, shape (out_features,), optional
    activation : {None, "relu"}
    transform : {None, "log1p"}
        Applied to x's stored values (log(1 + v)).
    out : ndarray, shape (batch, out_features), float32, optional

    Returns
    -------
    y : ndarray, shape (batch, out_features), float32
        As :func:`vaefast.ops.linear` on the dense ``T(x)``, within float32
        rounding (module docstring); with ReLU, ``y > 0`` is the mask that
        :func:`sparse_linear_weight_grad` takes back as ``y``.
    """
    relu = _activation(activation)
    code = _transform(transform)
    parts = csr_parts(x, "x")
    data, indices, indptr, (rows, cols) = parts
    Wv = _matrix(W, "W")
    if cols != Wv.shape[0]:
        raise ValueError(f"x has {cols} features but W expects {Wv.shape[0]} "
                         f"(x shape {(rows, cols)}, W shape {Wv.shape})")
    bv = None if b is None else _vector(b, "b", Wv.shape[1])
    y = _output(out, "out", (rows, Wv.shape[1]))
    status = _core.csr_linear_forward(indptr, indices, data, code, Wv, bv, relu, y)
    if _status(status, parts, transform):
        used = np.unique(indices[indptr[0]:indptr[-1]])
        nonfinite_result("T(x) @ W + b", [("W", W, Wv[used]), ("b", b, bv)])
    return y


def sparse_linear_weight_grad(x: SparseMatrix, dy: ArrayLike, y: Optional[ArrayLike] = None,
                              activation: Activation = None, transform: Transform = None,
                              dW: Optional[F32] = None, db: Optional[F32] = None,
                              accumulate: bool = False) -> tuple[F32, F32]:
    """Weight and bias gradients of ``y = act(T(x) @ W + b)`` for a CSR x.

    Parameters
    ----------
    x : CSR matrix, shape (batch, in_features)
    dy : array_like, shape (batch, out_features)
    y : array_like, shape (batch, out_features), optional
        The forward output; required with ``activation="relu"``, where the
        gradient flows only through entries with ``y > 0``.
    activation : {None, "relu"}
    transform : {None, "log1p"}
        The forward's transform of x's values.
    dW : ndarray, shape (in_features, out_features), float32, optional
    db : ndarray, shape (out_features,), float32, optional
        Where to write; required with ``accumulate``.
    accumulate : bool
        False: overwrite dW and db (every row of dW, zeros for features no
        row of x holds). True: add to them (``dW + T(x).T @ dz``).

    Returns
    -------
    dW : ndarray (in_features, out_features)
        ``T(x).T @ dz`` with ``dz = dy * (y > 0)`` (or ``dy``).
    db : ndarray (out_features,)
        Column sums of ``dz``.

    dW is computed from the batch's entries (never a dense matrix),
    transposed once per call: each row of dW is one sum over the batch rows
    that hold its feature, in row order, kept in registers and written once;
    threads split dW's rows.
    """
    relu = _activation(activation)
    code = _transform(transform)
    parts = csr_parts(x, "x")
    data, indices, indptr, (rows, cols) = parts
    dyv = _matrix(dy, "dy")
    if dyv.shape[0] != rows:
        raise ValueError(f"dy must have {rows} rows to match x, got shape {dyv.shape}")
    n_out = dyv.shape[1]
    yv = _relu_output(y, dyv) if relu else None
    if accumulate and (dW is None or db is None):
        raise ValueError("accumulate=True needs dW and db to add to")
    dW = np.empty((cols, n_out), np.float32) if dW is None else check_out(
        dW, "dW", (cols, n_out))
    db = np.empty(n_out, np.float32) if db is None else check_out(db, "db", (n_out,))
    status = _core.csr_linear_backward_weight(indptr, indices, data, code, dyv, yv, dW, db,
                                              bool(accumulate))
    if _status(status, parts, transform):
        # dW and db are overwritten by now: with accumulate their old values
        # are part of what came out non-finite
        what = "dW + T(x).T @ dz" if accumulate else "the gradient T(x).T @ dz"
        nonfinite_result(what, [("dy", dy, dyv), ("y", y, yv)])
    return dW, db
