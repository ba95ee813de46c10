"""CSR input without densifying: reading a sparse matrix's arrays, gathering
a batch of its rows, and naming what is wrong with a bad one.

Any object with ``format == "csr"`` and ``data``, ``indices``, ``indptr``
and ``shape`` is taken as CSR (scipy.sparse's ``csr_matrix`` and
``csr_array``, and :class:`CSRBatch`); a ``"csc"`` object is converted with
its own ``tocsr()``, which is meant for a batch (on a whole matrix it is a
full copy: convert once with ``X.tocsr()`` before training). scipy is never
imported here.

The core takes int64 row pointers, int32 column indices and float32 values:
int32 row pointers are widened (rows + 1 numbers), int64 indices are
narrowed after checking they are in range, and other value types are
converted, each for the batch only. Column indices must be sorted and
unique within a row (scipy's canonical format): duplicates are refused, not
summed, because log1p(a) + log1p(b) is not log1p(a + b); ``X.sum_duplicates()``
makes a matrix canonical.
"""

import operator
from collections import namedtuple
from typing import Any, NoReturn, Optional, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._typing import F32, I32, I64, SparseMatrix

# (data float32, indices int32, indptr int64, (rows, cols))
CSRParts = tuple[F32, I32, I64, tuple[int, int]]

__all__ = ["CSRBatch", "gather_csr_rows", "gather_dense_rows"]

_INT32_MAX = np.iinfo(np.int32).max
_I64, _I32, _F32 = np.dtype(np.int64), np.dtype(np.int32), np.dtype(np.float32)


class CSRBatch(namedtuple("_CSRArrays", "data indices indptr")):
    """Rows of a CSR matrix as its three arrays, ``(data, indices, indptr)``
    (float32, int32, int64, ``indptr[0] == 0``), with ``shape`` and
    ``format == "csr"``, so it unpacks as a tuple and is accepted wherever a
    CSR matrix is (:func:`vaefast.ops.sparse_linear`)."""

    format = "csr"

    shape: tuple[int, int]

    def __new__(cls, data: Any, indices: Any, indptr: Any,
                shape: "tuple[int, int]") -> "CSRBatch":
        self = super().__new__(cls, data, indices, indptr)
        self.shape = (int(shape[0]), int(shape[1]))
        return self

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1] - self.indptr[0])

    def toarray(self, transform: Optional[str] = None) -> F32:
        """The rows as a dense float32 array (transform: None or "log1p")."""
        return _densify(self, transform)


def _is_sparse_format(x: object, fmt: str) -> bool:
    return getattr(x, "format", None) == fmt and hasattr(x, "indptr")


def csr_parts(x: SparseMatrix, name: str = "x") -> CSRParts:
    """(data float32, indices int32, indptr int64, (rows, cols)) of a CSR
    (or CSC, converted) matrix, with lengths checked; copies only what has
    another type. Raises TypeError/ValueError naming `name`."""
    if _is_sparse_format(x, "csc"):
        x = x.tocsr()
    if not _is_sparse_format(x, "csr") or not hasattr(x, "shape"):
        kind = getattr(x, "format", type(x).__name__)
        raise TypeError(f"{name} must be a CSR (or CSC) sparse matrix, got {kind} "
                        "(dense arrays go to vaefast.ops.linear)")
    rows, cols = x.shape
    rows, cols = operator.index(rows), operator.index(cols)
    indptr, indices, data = x.indptr, x.indices, x.data
    if (type(indptr) is np.ndarray and type(indices) is np.ndarray
            and type(data) is np.ndarray and indptr.dtype == _I64
            and indices.dtype == _I32 and data.dtype == _F32
            and indptr.ndim == indices.ndim == data.ndim == 1
            and indptr.flags.c_contiguous and indices.flags.c_contiguous
            and data.flags.c_contiguous and cols <= _INT32_MAX + 1):
        # the core's own types already (a gathered batch): the same checks
        # as below, without the conversions, which cost a batch-sized call
        # more than the rest of it (17 µs against a few)
        _check_lengths(name, rows, indptr, indices, data)
        return data, indices, indptr, (rows, cols)
    indptr = np.asarray(indptr)
    indices = np.asarray(indices)
    data = np.asarray(data)
    # dtype kinds, not np.issubdtype (the same sets; a tenth of the time,
    # which a batch-sized call notices): integers "iu", real numbers or bool "iufb"
    for part, arr in (("indptr", indptr), ("indices", indices)):
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise TypeError(f"{name}.{part} must be a 1-D integer array, got "
                            f"dtype {arr.dtype}, shape {arr.shape}")
    if data.ndim != 1 or data.dtype.kind not in "iufb":
        raise TypeError(f"{name}.data must be a 1-D array of real numbers, got "
                        f"dtype {data.dtype}, shape {data.shape}")
    end = _check_lengths(name, rows, indptr, indices, data)
    if indices.dtype != np.int32:
        # narrow only what is in range: out-of-range values must not wrap
        used = indices[int(indptr[0]):end] if rows else indices[:0]
        if used.size and (used.min() < 0 or used.max() >= cols):
            _raise_out_of_range(name, used, cols)
        indices = indices.astype(np.int32)
    if cols > _INT32_MAX + 1:
        raise ValueError(f"{name} has {cols} columns; int32 column indices hold at "
                         f"most {_INT32_MAX + 1}")
    return (np.ascontiguousarray(data, dtype=np.float32),
            np.ascontiguousarray(indices), np.ascontiguousarray(indptr, dtype=np.int64),
            (rows, cols))


def _check_lengths(name: str, rows: int, indptr: NDArray[Any], indices: NDArray[Any],
                   data: NDArray[Any]) -> int:
    """indptr's length, first and last pointer against rows and the arrays'
    lengths (1-D arrays); returns the last pointer."""
    if indptr.shape[0] != rows + 1:
        raise ValueError(f"{name}.indptr must have {rows + 1} entries for {rows} rows, "
                         f"got {indptr.shape[0]}")
    if not rows:
        return 0
    start, end = int(indptr[0]), int(indptr[-1])
    if start < 0 or end < start:
        raise ValueError(f"{name}.indptr must be non-decreasing from >= 0, got "
                         f"{start} .. {end}")
    for part, arr in (("indices", indices), ("data", data)):
        if arr.shape[0] < end:
            raise ValueError(f"{name}.{part} has {arr.shape[0]} entries but "
                             f"{name}.indptr refers to {end}")
    return end


def _raise_out_of_range(name: str, used: "NDArray[np.integer[Any]]", cols: int) -> NoReturn:
    lo, hi = int(used.min()), int(used.max())
    raise ValueError(f"{name}.indices must lie in [0, {cols}) (the number of "
                     f"columns), got values in [{lo}, {hi}]")


def explain_bad_csr(data: F32, indices: I32, indptr: I64, cols: int, transform: Optional[str],
                    name: str = "x") -> NoReturn:
    """Raise the ValueError naming which rule of the core's CSR input
    (vaefast.h, "CSR input") the arrays break; called after the core said
    one is broken, so it may be slow."""
    rows = indptr.shape[0] - 1
    if np.any(np.diff(indptr) < 0):
        r = int(np.argmax(np.diff(indptr) < 0))
        raise ValueError(f"{name}.indptr must be non-decreasing (row {r} ends before "
                         "it starts)")
    lo, hi = int(indptr[0]), int(indptr[-1])
    idx = indices[lo:hi].astype(np.int64)
    vals = data[lo:hi]
    if idx.size and (idx.min() < 0 or idx.max() >= cols):
        _raise_out_of_range(name, idx, cols)
    row_of = np.repeat(np.arange(rows), np.diff(indptr))
    same_row = row_of[1:] == row_of[:-1]
    bad = same_row & (idx[1:] <= idx[:-1])
    if bad.any():
        r = int(row_of[1:][bad][0])
        what = "duplicate" if np.any(same_row & (idx[1:] == idx[:-1])) else "unsorted"
        raise ValueError(f"{name}.indices must be sorted and unique within each row, "
                         f"row {r} has {what} column indices (scipy: call "
                         f"{name}.sum_duplicates(), which also sorts)")
    if not np.isfinite(vals).all():
        raise ValueError(f"{name}.data contains NaN or infinity")
    if transform == "log1p" and vals.size and vals.min() < 0:
        raise ValueError(f"{name}.data must be >= 0 with transform='log1p' (counts), "
                         f"got a minimum of {vals.min()}")
    raise ValueError(f"{name} is not a valid CSR matrix")


def _row_index(rows: "slice | ArrayLike", n_rows: int,
               name: str = "rows") -> Union[I64, tuple[int, int]]:
    """rows as a 1-D int64 array in [0, n_rows), or a (start, stop) pair
    for a slice of step 1 (read in place)."""
    if isinstance(rows, slice):
        start, stop, step = rows.indices(n_rows)
        if step == 1:
            return (start, max(start, stop))
        return np.arange(start, stop, step, dtype=np.int64)
    idx = np.asarray(rows)
    if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
        raise TypeError(f"{name} must be a slice or a 1-D array of integers, got "
                        f"dtype {idx.dtype}, shape {idx.shape}")
    idx = idx.astype(np.int64, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= n_rows):
        raise ValueError(f"{name} must lie in [0, {n_rows}), got values in "
                         f"[{int(idx.min())}, {int(idx.max())}]")
    return idx


def gather_csr_rows(X: SparseMatrix, rows: "slice | ArrayLike") -> CSRBatch:
    """Rows of the CSR matrix X as a :class:`CSRBatch` ``(data, indices,
    indptr)``, without densifying anything.

    Parameters
    ----------
    X : CSR matrix (scipy.sparse csr_matrix / csr_array, or any object with
        ``format == "csr"`` and data/indices/indptr/shape); a CSC matrix is
        indexed by its own ``X[rows]`` and converted, which costs a pass
        over the whole matrix per batch.
    rows : slice or 1-D array of int
        Which rows, in order (repeats allowed). A slice of step 1 returns
        views of X's data and indices (no copy of the entries).

    Returns
    -------
    CSRBatch : float32 data, int32 indices, int64 indptr from 0, ``shape``
        (len(rows), X.shape[1]).
    """
    if _is_sparse_format(X, "csc"):
        n_rows = operator.index(X.shape[0])
        sel = _row_index(rows, n_rows)
        sel = np.arange(*sel) if isinstance(sel, tuple) else sel
        return CSRBatch(*csr_parts(X[sel].tocsr(), "X")[:3], (sel.size, X.shape[1]))
    if not _is_sparse_format(X, "csr"):
        raise TypeError(f"X must be a CSR (or CSC) sparse matrix, got "
                        f"{getattr(X, 'format', type(X).__name__)}")
    n_rows, cols = (operator.index(s) for s in X.shape)
    sel = _row_index(rows, n_rows)
    indptr = np.asarray(X.indptr)
    if isinstance(sel, tuple):  # contiguous: views of the entries
        start, stop = sel
        lo, hi = int(indptr[start]), int(indptr[stop])
        sub = CSRBatch(np.asarray(X.data)[lo:hi], np.asarray(X.indices)[lo:hi],
                       indptr[start:stop + 1] - lo, (stop - start, cols))
        return CSRBatch(*csr_parts(sub, "X")[:3], sub.shape)
    starts = indptr[sel].astype(np.int64)
    lengths = indptr[sel + 1].astype(np.int64) - starts
    out_ptr = np.zeros(sel.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_ptr[1:])
    # position of each gathered entry in X: its row's start plus its rank
    pos = np.repeat(starts - out_ptr[:-1], lengths) + np.arange(out_ptr[-1], dtype=np.int64)
    sub = CSRBatch(np.asarray(X.data)[pos], np.asarray(X.indices)[pos], out_ptr,
                   (sel.size, cols))
    return CSRBatch(*csr_parts(sub, "X")[:3], sub.shape)


def _densify(batch: CSRBatch, transform: Optional[str]) -> F32:
    data, indices, indptr = batch.data, batch.indices, batch.indptr
    rows, cols = batch.shape
    out = np.zeros((rows, cols), dtype=np.float32)
    vals = data[indptr[0]:indptr[-1]]
    if transform == "log1p":
        vals = np.log(np.float32(1) + vals)  # log of the rounded 1 + v, as the core
    elif transform is not None:
        raise ValueError(f"transform must be None or 'log1p', got {transform!r}")
    row_of = np.repeat(np.arange(rows), np.diff(indptr))
    out[row_of, indices[indptr[0]:indptr[-1]]] = vals
    return out


def gather_dense_rows(X: SparseMatrix, rows: "slice | ArrayLike",
                      transform: Optional[str] = None) -> F32:
    """Rows of the CSR (or CSC) matrix X as a dense float32 array
    (len(rows), X.shape[1]): only the batch is densified. transform="log1p"
    applies log(1 + v) to the stored values (zeros stay zero)."""
    return _densify(gather_csr_rows(X, rows), transform)
