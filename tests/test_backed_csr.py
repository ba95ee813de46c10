"""The backed-CSR reader (vaefast/_backed_csr.py): rows of an .h5ad's CSR
matrix read straight from its HDF5 datasets must equal anndata's and
scipy's rows exactly (the values are copied, never computed), in any order,
with repeats, empty rows and slices; other backed layouts (CSC) keep
anndata's reader."""

import os

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse")
ad = pytest.importorskip("anndata", reason="anndata is not installed "
                                           "(pip install 'vaefast[anndata]')")

from vaefast import _rows  # noqa: E402
from vaefast._backed_csr import BackedCSR, _FileRanges, _SliceRanges  # noqa: E402


def _rewrite(path, chunks):
    """Rewrite the file's X/data and X/indices with `chunks` (None: HDF5's
    contiguous layout)."""
    import h5py

    with h5py.File(path, "r+") as f:
        for name in ("data", "indices"):
            values, attrs = f["X"][name][:], dict(f["X"][name].attrs)
            del f["X"][name]
            f["X"].create_dataset(name, data=values, chunks=chunks)
            f["X"][name].attrs.update(attrs)


# how the file is written -> the reader expected: pread at byte offsets for
# chunked and contiguous files, h5py slices for a compressed one;
# "small_chunks": 5 entries a chunk, so that most rows' ranges cross chunks
LAYOUTS = {"chunked": _FileRanges, "contiguous": _FileRanges, "small_chunks": _FileRanges,
           "gzip": _SliceRanges}


@pytest.fixture(scope="module", params=list(LAYOUTS))
def stored(request, tmp_path_factory):
    rng = np.random.default_rng(3)
    X = rng.poisson(0.3, (257, 31)).astype(np.float32)
    X[[0, 17, 18, 19, 256]] = 0.0  # empty rows, a run of them, the last row
    path = tmp_path_factory.mktemp("backed") / f"x_{request.param}.h5ad"
    a = ad.AnnData(X=sp.csr_matrix(X))
    a.write_h5ad(path, compression="gzip" if request.param == "gzip" else None)
    if request.param in ("contiguous", "small_chunks"):
        _rewrite(path, None if request.param == "contiguous" else (5,))
    return X, path, LAYOUTS[request.param]


ROWS = [np.arange(257), np.array([5, 5, 3, 256, 0, 18, 17, 19, 100]),
        np.random.default_rng(0).integers(0, 257, 64), np.array([], dtype=np.int64),
        np.array([17, 18, 19]), slice(10, 30), slice(250, 257), slice(0, 0)]


@pytest.mark.parametrize("rows", ROWS, ids=lambda r: f"{r}"[:30])
def test_rows_equal_the_stored_matrix(stored, rows):
    X, path, reader = stored
    backed = _rows.resolve(ad.read_h5ad(path, backed="r"), "X")
    assert isinstance(backed._backed, BackedCSR)  # the fast reader is the one used ...
    assert isinstance(backed._backed.data, reader)  # ... with the expected ranges
    np.testing.assert_array_equal(backed.take(rows), X[rows])
    batch = backed.take_csr(rows)
    want = sp.csr_matrix(X[rows])
    np.testing.assert_array_equal(batch.indptr, want.indptr)
    np.testing.assert_array_equal(batch.indices, want.indices)
    np.testing.assert_array_equal(batch.data, want.data)


def test_reader_only_for_backed_csr(stored, tmp_path):
    X, path, _ = stored
    assert BackedCSR.of(ad.read_h5ad(path, backed="r").X) is not None
    assert BackedCSR.of(sp.csr_matrix(X)) is None  # in memory: no HDF5 group
    csc_path = tmp_path / "csc.h5ad"
    ad.AnnData(X=sp.csc_matrix(X)).write_h5ad(csc_path)
    csc = _rows.resolve(ad.read_h5ad(csc_path, backed="r"), "X")
    assert not csc.in_memory and csc._backed is None  # a CSC file keeps anndata's reader ...
    np.testing.assert_array_equal(csc.take(np.array([3, 1, 2])), X[[3, 1, 2]])  # ... and works


def test_reader_kept_per_unchanged_file(stored, tmp_path):
    """A pread reader is built once per file: a second opening of the same
    unchanged file reuses it (and its rows are still right); a rewritten
    file gets a new reader with the new values. Readers of h5py slices hold
    the open file's datasets, so they are never kept."""
    X, path, reader = stored
    first = BackedCSR.of(ad.read_h5ad(path, backed="r").X)
    again = BackedCSR.of(ad.read_h5ad(path, backed="r").X)
    rows = np.array([3, 4, 5, 200])
    if reader is _SliceRanges:
        assert first is not again
        return
    assert first is again
    np.testing.assert_array_equal(again.rows(rows).toarray(), X[rows])
    copy = tmp_path / "rewritten.h5ad"
    copy.write_bytes(path.read_bytes())
    old = BackedCSR.of(ad.read_h5ad(copy, backed="r").X)
    before = copy.stat().st_mtime_ns
    ad.AnnData(X=sp.csr_matrix(X * 2)).write_h5ad(copy)
    # a rewrite within the file system's clock tick would keep the time
    os.utime(copy, ns=(before + 10**9, before + 10**9))
    new = BackedCSR.of(ad.read_h5ad(copy, backed="r").X)
    assert new is not old
    np.testing.assert_array_equal(new.rows(rows).toarray(), 2 * X[rows])


def test_truncated_file_is_an_error(stored, tmp_path):
    """A file cut short after its reader was built: a short read is an
    OSError naming the dataset, never rows of garbage."""
    X, path, reader = stored
    if reader is _SliceRanges:
        pytest.skip("h5py reads the compressed file itself")
    copy = tmp_path / "cut.h5ad"
    copy.write_bytes(path.read_bytes())
    backed = BackedCSR(ad.read_h5ad(copy, backed="r").X.group, X.shape)
    last = int(backed.data.offsets.max())  # data's last chunk (or the whole dataset)
    os.truncate(copy, last + 4)
    with pytest.raises(OSError, match="X/data.*ended"):
        backed.rows(np.arange(X.shape[0]))
