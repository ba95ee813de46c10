"""What kind of matrix an input is, and how to gather rows of it: the one
place that answers both, for fit, the inference methods and the MPI shard.

Kinds (recognised by module name and attributes, so that neither scipy nor
anndata is ever imported here; whoever passes one has imported it):

* a dense array (NumPy, an AnnData's dense ``.X``): returned as is, for the
  existing dense paths;
* an in-memory sparse matrix (scipy.sparse CSR/CSC/COO/..., matrix or
  sparray, or any object with ``format == "csr"`` and ``data``,
  ``indices``, ``indptr``): :class:`Rows` over it; a non-CSR matrix is
  converted to CSR once with its own ``tocsr()`` (a sparse copy, never a
  dense one);
* a backed matrix (anndata's backed sparse dataset of
  ``read_h5ad(path, backed="r")``, an h5py dataset): :class:`Rows` reading
  the rows of each batch from the file;
* an AnnData or a view of one: its ``.X`` (or ``.layers[layer]``), then as
  above.

Only a batch of rows is ever made dense (:meth:`Rows.take`).
"""

import operator
from typing import Any, Callable, Optional, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._backed_csr import BackedCSR
from ._sparse_batch import CSRBatch, gather_csr_rows, gather_dense_rows
from ._typing import F32, F64, I64, SparseMatrix

# Which rows: a slice of step 1 or a 1-D array of indices
RowIndex = Union[slice, ArrayLike]

__all__ = ["Rows", "is_anndata", "is_gatherable", "resolve", "chunk_rows"]

_CHECK_ENTRIES = 1 << 22  # stored entries checked per piece (bounds the temporaries)
_CHUNK_BYTES = 8 << 20    # dense bytes per inference chunk (chunk_rows)


def _root(x: object) -> str:
    return type(x).__module__.split(".")[0]


def is_anndata(x: object) -> bool:
    return _root(x) == "anndata" and all(hasattr(x, a) for a in ("obs", "var", "layers", "X"))


def _is_sparse(x: object) -> bool:
    if isinstance(x, np.ndarray):
        return False
    if getattr(x, "format", None) in ("csr", "csc") and hasattr(x, "indptr"):
        return True
    return _root(x) == "scipy" and hasattr(x, "tocsr") and hasattr(x, "nnz")


def _is_backed(x: object) -> bool:
    return (not isinstance(x, np.ndarray) and _root(x) in ("anndata", "h5py")
            and hasattr(x, "shape") and hasattr(x, "__getitem__"))


def is_gatherable(x: object) -> bool:
    """Whether x is read through :class:`Rows` (sparse, backed or AnnData)."""
    return isinstance(x, Rows) or is_anndata(x) or _is_sparse(x) or _is_backed(x)


class Rows:
    """A sparse or backed matrix, read a batch of rows at a time.

    ``shape`` is (rows, columns); :meth:`take` returns rows as a dense
    float32 array, nothing more; ``in_memory`` says whether the whole
    matrix's values were checked when it was made (else each batch is).
    """

    def __init__(self, matrix: SparseMatrix, name: str, in_memory: bool) -> None:
        self.matrix, self.name, self.in_memory = matrix, name, in_memory
        # a backed CSR file: rows read straight from its datasets
        self._backed = None if in_memory else BackedCSR.of(matrix)
        self.shape: tuple[int, ...] = tuple(operator.index(s) for s in matrix.shape)
        if len(self.shape) != 2:
            raise ValueError(f"{name} must be 2-dimensional, got shape {self.shape}")

    @property
    def n_rows(self) -> int:
        return self.shape[0]

    @property
    def sparse(self) -> bool:
        """Whether :meth:`take_csr` gives CSR rows (else the matrix is dense)."""
        return self.in_memory or getattr(self.matrix, "format", None) in ("csr", "csc")

    def take(self, rows: RowIndex) -> F32:
        """Rows (a slice of step 1 or 1-D int array, any order, repeats
        allowed) as a dense float32 (len(rows), columns) array."""
        if self.in_memory:
            return gather_dense_rows(self.matrix, rows)
        block, order = self._read(rows)
        if _is_sparse(block):
            return gather_csr_rows(_canonical(block, self.name), order).toarray()
        return np.ascontiguousarray(np.asarray(block, dtype=np.float32)[order])

    def take_csr(self, rows: RowIndex) -> CSRBatch:
        """Rows as a CSRBatch (float32 data, int32 indices sorted within each
        row, int64 indptr from 0), for the CSR first layer; never dense."""
        if self.in_memory:
            batch = gather_csr_rows(self.matrix, rows)
            return batch if self.sorted_rows else _sort_rows(batch)
        block, order = self._read(rows)
        sel: RowIndex = order
        if order.size == block.shape[0] and (order == np.arange(order.size)).all():
            sel = slice(0, order.size)  # rows read in the order asked: views, no gather
        return gather_csr_rows(_canonical(block, self.name), sel)

    def take_csr_sorted(self, rows: RowIndex) -> tuple[CSRBatch, Optional[I64]]:
        """Rows (a slice, or distinct indices in any order) as a CSRBatch of
        those rows in increasing order, and where each asked row is in it
        (None for a slice: in the order asked). A file is read in
        increasing row order anyway; handing its rows over in that order
        with the positions lets the core gather the batches (no reorder in
        NumPy)."""
        if isinstance(rows, slice):
            return self.take_csr(rows), None
        uniq, back = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
        if uniq.size != back.size:
            raise ValueError(f"{self.name}: rows must be distinct, got {back.size - uniq.size} "
                             "repeated")
        return self.take_csr(uniq), back.astype(np.int64, copy=False)

    @property
    def mean_row_entries(self) -> float:
        """Stored entries per row on average (1.0 when unknown)."""
        if self._backed is not None:
            indptr = self._backed.indptr
        elif self.in_memory and getattr(self.matrix, "format", None) == "csr":
            indptr = self.matrix.indptr
        else:
            return 1.0
        return max(1.0, float(indptr[-1] - indptr[0]) / max(1, self.shape[0]))

    def _read(self, rows: RowIndex) -> tuple[Any, I64]:
        """(block read from the file, the block's rows in the order asked)."""
        if isinstance(rows, slice):  # contiguous rows: one read
            if self._backed is not None:
                start, stop, _ = rows.indices(self.shape[0])
                block = self._backed.rows(np.arange(start, stop, dtype=np.int64))
            else:
                block = self.matrix[rows]
            return block, np.arange(block.shape[0])
        # files read increasing rows best (h5py requires it): read each once, reorder
        uniq, back = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
        if self._backed is not None:
            return self._backed.rows(uniq), back
        return self.matrix[uniq], back

    def check(self, check_values: Callable[[F32, str], object],
              check_totals: Optional[Callable[[F64, str], object]] = None) -> "Rows":
        """Check every stored value of an in-memory sparse matrix with
        check_values(float32 1-D array, name), and refuse duplicate column
        indices within a row (they would be summed by scipy but not here);
        a piece of the entries at a time. check_totals, if given, is then
        called once with every row's total (float64, n rows) and the name.
        Backed matrices: nothing (each batch is checked when read)."""
        if not self.in_memory:
            return self
        X = self.matrix
        indptr = np.asarray(X.indptr)
        n, start = self.shape[0], 0
        canonical = getattr(X, "has_canonical_format", False) is True
        totals = np.zeros(n) if check_totals is not None else None
        self.sorted_rows = True
        while start < n:
            lo = int(indptr[start])
            stop = int(np.searchsorted(indptr, lo + _CHECK_ENTRIES, side="right")) - 1
            stop = min(n, max(stop, start + 1))
            hi = int(indptr[stop])
            values = np.asarray(X.data[lo:hi], dtype=np.float32)
            check_values(values, self.name)
            if check_totals is not None:
                assert totals is not None  # allocated with check_totals
                totals[start:stop] = np.bincount(_row_numbers(indptr[start:stop + 1] - lo),
                                                 weights=values, minlength=stop - start)
            if not canonical:
                self.sorted_rows &= _refuse_duplicates(np.asarray(X.indices[lo:hi]),
                                                  indptr[start:stop + 1] - lo, start, self.name)
            start = stop
        if check_totals is not None:
            assert totals is not None
            check_totals(totals, self.name)
        return self

    sorted_rows = False  # column indices sorted within each row (known after check)


def _canonical(block: SparseMatrix, name: str) -> SparseMatrix:
    """A sparse block read from a file as CSR with sorted, unique columns."""
    block = block if block.format == "csr" else block.tocsr()
    if getattr(block, "has_canonical_format", False) is not True:
        indptr = np.asarray(block.indptr)
        if not _refuse_duplicates(np.asarray(block.indices)[indptr[0]:indptr[-1]],
                                  indptr - indptr[0], 0, name):
            block = block.sorted_indices()
    return block


def _sort_rows(batch: CSRBatch) -> CSRBatch:
    """A CSRBatch with each row's entries in increasing column order."""
    order = np.lexsort((batch.indices, _row_numbers(batch.indptr)))
    return CSRBatch(batch.data[order], batch.indices[order], batch.indptr, batch.shape)


def _row_numbers(indptr: NDArray[Any]) -> I64:
    lengths = np.diff(indptr)
    return np.repeat(np.arange(lengths.size), lengths)


def _refuse_duplicates(indices: NDArray[Any], indptr: NDArray[Any], row0: int,
                       name: str) -> bool:
    """ValueError naming `name` if a row of this piece repeats a column;
    returns whether the columns are sorted within every row."""
    row_of = _row_numbers(indptr)
    same_row = row_of[1:] == row_of[:-1]
    if not (same_row & (indices[1:] <= indices[:-1])).any():
        return True  # sorted and unique within every row
    order = np.lexsort((indices, row_of))
    i, r = indices[order], row_of[order]
    dup = (r[1:] == r[:-1]) & (i[1:] == i[:-1])
    if dup.any():
        raise ValueError(f"{name} has duplicate column indices in row "
                         f"{row0 + int(r[1:][dup][0])}; sum them first (scipy: "
                         f"{name}.sum_duplicates())")
    return False


def _layer_matrix(adata: Any, layer: Optional[str], name: str) -> Any:
    if layer is None:
        if adata.X is None:
            raise ValueError(f"{name}.X is None: pass layer= to name the matrix to use")
        return adata.X
    keys = list(adata.layers.keys())
    if layer not in keys:
        raise KeyError(f"layer={layer!r} is not a layer of {name} (its layers: {keys})")
    return adata.layers[layer]


def resolve(x: Any, name: str = "X", layer: Optional[str] = None) -> Any:
    """x as fit and the inference methods read it: a :class:`Rows` for a
    sparse, backed or AnnData input (an AnnData's dense ``.X`` or layer is
    returned as the array itself), x itself for anything else; `layer`
    names an AnnData layer and is refused for other inputs."""
    if is_anndata(x):
        x = _layer_matrix(x, layer, name)
        if isinstance(x, np.ndarray):
            return x
    elif layer is not None:
        raise ValueError(f"layer={layer!r} applies only when {name} is an AnnData, "
                         f"got {type(x).__name__}")
    if isinstance(x, Rows):
        return x
    if _is_sparse(x):
        if len(x.shape) != 2:
            raise ValueError(f"{name} must be 2-dimensional, got shape {x.shape}")
        if getattr(x, "format", None) != "csr":
            x = x.tocsr()  # once: CSC rows would cost a pass over X per batch
        return Rows(x, name, in_memory=True)
    if _is_backed(x):
        return Rows(x, name, in_memory=False)
    return x


def chunk_rows(n_cols: int, most: int) -> int:
    """Rows per inference chunk: about _CHUNK_BYTES dense, 1 .. most."""
    return max(1, min(most, _CHUNK_BYTES // (4 * max(1, n_cols))))
