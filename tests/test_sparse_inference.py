"""The CSR first layer in inference (vaefast/_sparse_infer.py, the core's
vf_vae_encode_rows / vf_vae_elbo_rows with CSR rows): encode, transform,
reconstruct and elbo on sparse rows of an unconditional model never make
the chunk dense for the encoder.

Oracle: the same call on the dense array. The paths differ only in the
first layer's float32 sums (the GEMM blocks K = 2,000 and adds its blocks'
partial sums; the CSR kernel adds the stored products in order): each
first-layer output within (n + 4)·u·S (tests/test_csr.py), so about
(n + 4)·u ≈ 1.2e-5 of the terms' magnitude for n = 200 stored entries, and
the layers after it scale that difference by their weights' norms, which
are about 1 here. Hence the encodings are compared at 1e-5 of their largest
magnitude (plus 1e-6 absolute), as the training path compares gradients
(tests/test_sparse_input.py), and the ELBO at 1e-6 relatively.
"""

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse")

import vaefast  # noqa: E402
from vaefast import _rows  # noqa: E402

D = 2000


@pytest.fixture(scope="module")
def counts():
    """(300, D) counts, about 90% zeros, no empty row."""
    rng = np.random.default_rng(11)
    X = rng.negative_binomial(2.0, 0.3, (300, D)).astype(np.float32) + 1
    X[rng.random(X.shape) >= 0.1] = 0
    X[:, 0] += 1
    return X


def model(likelihood, **kw):
    return vaefast.VAE(D, hidden=(32,), latent_dim=5, likelihood=likelihood, seed=4, **kw)


@pytest.mark.parametrize("likelihood", ["zinb", "scvi_nb", "negative_binomial", "gaussian"])
def test_sparse_inference_close_to_dense(counts, kernel_set, likelihood, no_dense_chunks,
                                         close_to):
    m = model(likelihood)
    X = sp.csr_matrix(counts)
    close_to(m.encode(X), m.encode(counts))
    close_to(m.transform(sp.csc_matrix(counts)), m.transform(counts))
    close_to(m.reconstruct(X), m.reconstruct(counts))
    want = m.elbo(counts, seed=3)
    np.testing.assert_allclose(m.elbo(X, seed=3), want, rtol=1e-6)
    if likelihood == "gaussian":
        return
    s = np.linspace(0.5, 2.0, counts.shape[0])
    np.testing.assert_allclose(m.elbo(X, seed=3, size_factors=s),
                               m.elbo(counts, seed=3, size_factors=s), rtol=1e-6)


def test_sparse_inference_not_bit_identical_is_possible(counts, close_to):
    """The bound is needed: at 2,000 genes some encoding differs in its last
    bits on the default kernel set (else the test of the bound above would
    be vacuous), and never by more than the bound."""
    m = model("zinb")
    got, want = m.encode(sp.csr_matrix(counts))[0], m.encode(counts)[0]
    close_to(got, want)
    assert not np.array_equal(got, want) or vaefast._core.get_isa() == "generic"


def test_sparse_inference_thread_count_free(counts, threads_setting):
    m = model("zinb")
    X = sp.csr_matrix(counts)
    runs = []
    for threads in (1, 2, 3):
        vaefast.set_num_threads(threads)
        runs.append((m.encode(X), m.elbo(X, seed=1), m.reconstruct(X)))
    for other in runs[1:]:
        np.testing.assert_array_equal(other[0][0], runs[0][0][0])
        np.testing.assert_array_equal(other[0][1], runs[0][0][1])
        np.testing.assert_array_equal(other[1], runs[0][1])
        np.testing.assert_array_equal(other[2], runs[0][2])


def test_conditional_model_reads_dense_chunks(counts, monkeypatch):
    """No CSR first layer with conditions: the dense chunk, bit for bit."""
    monkeypatch.setattr(_rows.Rows, "take_csr", None)  # would fail if called
    m = model("scvi_nb", n_conditions=2)
    c = np.random.default_rng(0).random((counts.shape[0], 2)).astype(np.float32)
    np.testing.assert_array_equal(m.transform(sp.csr_matrix(counts), c), m.transform(counts, c))


def test_bf16_reads_dense_chunks(counts, monkeypatch):
    """A bf16 call (the model's precision or the call's) takes the dense
    path, which has the bf16 layers: the same bits as the dense input."""
    monkeypatch.setattr(_rows.Rows, "take_csr", None)  # would fail if called
    m = model("scvi_nb", precision="bf16")
    X = sp.csr_matrix(counts)
    np.testing.assert_array_equal(m.transform(X), m.transform(counts))
    m = model("scvi_nb")
    np.testing.assert_array_equal(m.encode(X, precision="bf16")[0],
                                  m.encode(counts, precision="bf16")[0])


def test_sparse_inference_bad_input(counts):
    m = model("zinb")
    with pytest.raises(ValueError, match="2000 columns"):
        m.transform(sp.csr_matrix(counts[:, :10]))
    with pytest.raises(ValueError, match="c was given"):
        m.transform(sp.csr_matrix(counts), c=np.zeros((300, 1), np.float32))
    bad = sp.csr_matrix(counts)
    bad.data[3] = -1.0
    with pytest.raises(ValueError):
        m.transform(bad)


def test_canonical_rows_are_not_sorted_again_unsorted_ones_are(counts, monkeypatch):
    """A canonical CSR (scipy's has_canonical_format) goes to the core as it
    is; a matrix with unsorted rows is sorted a chunk at a time and gives
    the same encodings bit for bit."""
    m = model("scvi_nb")
    X = sp.csr_matrix(counts)
    want = m.transform(X)
    lo = X.indptr[int(np.argmax(np.diff(X.indptr) >= 2))]
    X.indices[[lo, lo + 1]] = X.indices[[lo + 1, lo]]
    X.data[[lo, lo + 1]] = X.data[[lo + 1, lo]]
    X.has_sorted_indices = False
    np.testing.assert_array_equal(m.transform(X), want)

    def refuse(batch):
        raise AssertionError("a canonical chunk was sorted")

    monkeypatch.setattr(_rows, "_sort_rows", refuse)
    np.testing.assert_array_equal(m.transform(sp.csr_matrix(counts)), want)


@pytest.mark.parametrize("backed", [False, True])
def test_anndata_input(counts, tmp_path, backed, no_dense_chunks, close_to):
    """An AnnData's CSR .X, in memory or backed by an .h5ad file, takes the
    CSR first layer too (the backed file a chunk at a time)."""
    ad = pytest.importorskip("anndata", reason="anndata is not installed "
                             "(pip install 'vaefast[anndata]')")
    a = ad.AnnData(X=sp.csr_matrix(counts))
    if backed:
        a.write_h5ad(tmp_path / "c.h5ad")
        a = ad.read_h5ad(tmp_path / "c.h5ad", backed="r")
    m = model("zinb")
    close_to(m.encode(a), m.encode(counts))
    np.testing.assert_allclose(m.elbo(a, seed=4), m.elbo(counts, seed=4), rtol=1e-6)
