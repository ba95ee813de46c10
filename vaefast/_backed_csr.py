"""Rows of a CSR matrix stored in an HDF5 file (anndata's backed sparse
dataset, ``read_h5ad(path, backed="r").X``), read straight from its three
datasets.

anndata's own row indexing of a backed matrix costs about 40 µs per row
(5.4 ms for 128 random rows of a 40,000 × 2,000 file, measured here); a
training batch asks for rows in random order, so that is most of a backed
epoch. Keeping ``indptr`` in memory (8 bytes a row: 8 MB for a million
cells) and reading each run of consecutive rows as one slice of ``data``
and ``indices`` costs about 8 µs per row (1.1 ms for the same batch).
The values are the file's, unchanged.
"""

from typing import Any, Optional

import numpy as np

from ._typing import I64


class BackedCSR:
    """Reads rows of the CSR matrix in an HDF5 group (datasets ``data``,
    ``indices``, ``indptr``) of shape ``shape``."""

    def __init__(self, group: Any, shape: tuple[int, ...]) -> None:
        self.data, self.indices = group["data"], group["indices"]
        self.indptr: I64 = np.asarray(group["indptr"][:], dtype=np.int64)
        self.shape = shape

    @classmethod
    def of(cls, matrix: Any) -> Optional["BackedCSR"]:
        """A reader for `matrix` if it is a backed CSR dataset, else None."""
        group = getattr(matrix, "group", None)
        if getattr(matrix, "format", None) != "csr" or group is None:
            return None
        try:
            if not all(k in group for k in ("data", "indices", "indptr")):
                return None
        except TypeError:  # not a mapping
            return None
        return cls(group, tuple(matrix.shape))

    def rows(self, rows: I64) -> Any:
        """Rows `rows` (increasing, unique) as a scipy CSR matrix."""
        import scipy.sparse  # present: anndata, which made the dataset, needs it

        indptr = self.indptr
        lengths = indptr[rows + 1] - indptr[rows]
        # runs of consecutive rows: one read each
        cut = np.flatnonzero(np.diff(rows) != 1) + 1
        data, indices = [], []
        for run in np.split(rows, cut) if len(rows) else ():
            lo, hi = int(indptr[run[0]]), int(indptr[run[-1] + 1])
            if hi > lo:
                data.append(self.data[lo:hi])
                indices.append(self.indices[lo:hi])
        out_ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=out_ptr[1:])
        values = np.concatenate(data) if data else np.zeros(0, self.data.dtype)
        cols = np.concatenate(indices) if indices else np.zeros(0, np.int32)
        return scipy.sparse.csr_matrix((values, cols, out_ptr), shape=(len(rows), self.shape[1]))
