"""fit streaming a backed .h5ad (training/streaming.py RandomAccessSource):
sparse rows are read a buffer of many batches at a time and stay CSR into
the core, which gathers each batch in the epoch's order.

Oracles: the same fit on the same CSR matrix in memory (the core gathers
its batches from the whole matrix: the same rows, entries and order, the
same C code), so the weights must be equal bit for bit, not within a
tolerance; and the dense array itself, whose rows in the epoch's order the
CSR buffers must reproduce exactly. Bad values in the file are found when
their buffer is read, with an error naming X."""

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse")
ad = pytest.importorskip("anndata", reason="anndata is not installed "
                                           "(pip install 'vaefast[anndata]')")
pytest.importorskip("h5py")

import vaefast  # noqa: E402
from vaefast import _rows  # noqa: E402
from vaefast.training import streaming  # noqa: E402

N, D, BATCH = 500, 60, 32  # 500 = 15 full batches + 20 rows: a short last batch


@pytest.fixture(scope="module")
def counts():
    """(N, D) counts, about 90% zeros, every row with a positive total."""
    rng = np.random.default_rng(11)
    X = rng.poisson(3.0, (N, D)).astype(np.float32) + 1
    X[rng.random(X.shape) >= 0.1] = 0
    X[X.sum(axis=1) == 0, 0] = 1
    return X


def write(tmp_path, X, name="x.h5ad"):
    path = tmp_path / name
    ad.AnnData(X=sp.csr_matrix(X)).write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def h5ad(counts, tmp_path_factory):
    return write(tmp_path_factory.mktemp("backed_stream"), counts)


def fitted(X, likelihood="zinb", epochs=2, model_kw=None, **kw):
    m = vaefast.VAE(D, hidden=(16,), latent_dim=4, likelihood=likelihood, seed=5,
                    **(model_kw or {}))
    h = m.fit(X, epochs=epochs, batch_size=BATCH, progress=False, **kw)
    return m.get_weights(), h.history["loss"]


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("likelihood", ["zinb", "poisson", "gaussian"])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("buffer_rows", [None, 3 * BATCH, 100])
def test_backed_fit_equals_in_memory_csr_fit(counts, h5ad, likelihood, shuffle, buffer_rows):
    """Backed (one or several CSR buffers per epoch, buffer_rows=100 rounded
    down to 3 batches) against the in-memory CSR the core gathers whole."""
    want, loss_want = fitted(sp.csr_matrix(counts), likelihood, shuffle=shuffle)
    got, loss_got = fitted(ad.read_h5ad(h5ad, backed="r"), likelihood, shuffle=shuffle,
                           buffer_rows=buffer_rows)
    assert_same(got, want)
    assert loss_got == loss_want


def test_backed_fit_equal_on_each_kernel_set_and_thread_count(counts, h5ad, kernel_set,
                                                             threads_setting):
    vaefast.set_num_threads(1)
    want, _ = fitted(sp.csr_matrix(counts), buffer_rows=3 * BATCH)
    for threads in (2, 3):
        vaefast.set_num_threads(threads)
        got, _ = fitted(ad.read_h5ad(h5ad, backed="r"), buffer_rows=3 * BATCH)
        assert_same(got, want)


@pytest.mark.parametrize("shuffle", [True, False])
def test_csr_buffers_hold_the_epochs_rows(counts, h5ad, shuffle):
    """Each buffer's CSR rows, taken at the given positions, are the dense
    rows of the epoch's order (exactly: the values are copied), and the
    buffers cover the epoch once, in order."""
    m = vaefast.VAE(D, hidden=(16,), latent_dim=4, likelihood="zinb", seed=5)
    X = _rows.resolve(ad.read_h5ad(h5ad, backed="r"), "X")
    source = streaming.RandomAccessSource(m, X, BATCH, 100, sparse_first_layer=True)
    assert source.csr_core and not source.whole and source.buffer_rows == 3 * BATCH
    order = np.random.default_rng([5, 0]).permutation(N) if shuffle else None
    seen = []
    for csr, pos, side in source._csr_buffers(order):
        assert csr.data.dtype == np.float32 and csr.indices.dtype == np.int32
        dense = csr.toarray()
        rows = dense if pos is None else dense[pos]
        seen.append(rows)
        assert side == [None, None]
    want = counts if order is None else counts[order]
    np.testing.assert_array_equal(np.concatenate(seen), want)
    assert [len(s) for s in seen] == [96] * 5 + [20]


def test_conditional_model_dense_batches_equal_dense_fit(counts, h5ad, monkeypatch):
    """A conditional model's first layer takes the dense batch: each batch
    alone is made dense (never the buffer), and the fit equals the dense
    array's bit for bit."""
    c = np.random.default_rng(0).random((N, 2)).astype(np.float32)
    kw = dict(likelihood="poisson", model_kw={"n_conditions": 2}, c=c)
    want, _ = fitted(counts, **kw)
    sizes = []
    dense_batch = streaming._dense_batch
    monkeypatch.setattr(streaming, "_dense_batch",
                        lambda csr, sel: sizes.append(len(range(N)[sel]) if isinstance(
                            sel, slice) else sel.size) or dense_batch(csr, sel))
    got, _ = fitted(ad.read_h5ad(h5ad, backed="r"), buffer_rows=3 * BATCH, **kw)
    assert_same(got, want)
    assert max(sizes) == BATCH and sum(sizes) == 2 * N


def test_default_buffer_is_many_batches(counts, h5ad):
    """Without buffer_rows, a backed buffer holds about 64 MiB of stored
    entries (here: the whole epoch in one buffer), a multiple of the batch."""
    m = vaefast.VAE(D, hidden=(16,), latent_dim=4, likelihood="zinb", seed=5)
    X = _rows.resolve(ad.read_h5ad(h5ad, backed="r"), "X")
    source = streaming.RandomAccessSource(m, X, BATCH, None, sparse_first_layer=True)
    entries = np.count_nonzero(counts) / N
    assert source.buffer_rows == int(streaming.DEFAULT_BUFFER_BYTES / (8 * entries)) // BATCH * BATCH


@pytest.mark.parametrize("bad, likelihood, match", [
    (-1.0, "poisson", "non-negative"),
    (np.nan, "gaussian", "NaN or infinity"),
    (2.5, "zinb", "integer counts"),
    ("empty", "zinb", "zero total count"),
])
def test_bad_values_in_the_file(counts, tmp_path, bad, likelihood, match):
    X = counts.copy()
    if bad == "empty":
        X[450] = 0
    else:
        X[450, np.flatnonzero(X[450])[0]] = bad
    path = write(tmp_path, X)
    with pytest.raises(ValueError, match=match) as err:
        fitted(ad.read_h5ad(path, backed="r"), likelihood, buffer_rows=3 * BATCH)
    assert "X" in str(err.value)
