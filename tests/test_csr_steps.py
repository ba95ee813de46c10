"""fit's batches gathered from an in-memory CSR matrix by the core
(csrc/vae_csr_steps.c) instead of by NumPy a batch at a time.

The oracle is the Python gather (vaefast/_rows.py, then one core call per
batch), which the core's gather must reproduce exactly: the same rows, the
same entries in the same order, the same dense targets. So the weights are
compared bit for bit, on every kernel set, with scVI's architecture (batch
norm, dropout, a batch covariate, ZINB); and bad arrays handed to the core
fail with a status, never a crash."""

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse")

import vaefast  # noqa: E402
from vaefast import _core  # noqa: E402
from vaefast._internals import PARAMS, internals  # noqa: E402
from vaefast._sparse_batch import gather_csr_rows  # noqa: E402

N, D, BATCH = 300, 200, 64


@pytest.fixture(scope="module")
def counts():
    """(N, D) Poisson counts, 90% of them zeroed, the first gene never (no
    row sums to 0)."""
    rng = np.random.default_rng(21)
    keep = rng.random((N, D)) < 0.1
    keep[:, 0] = True
    return np.where(keep, rng.poisson(4.0, (N, D)) + 1, 0).astype(np.float32)


@pytest.fixture(scope="module")
def codes():
    return np.random.default_rng(3).integers(0, 2, (N, 1)).astype(np.int32)


def scvi_model():
    """scVI's defaults at a small size: batch norm both sides, dropout 0.1,
    ZINB, the batch in every decoder layer and not in the encoder."""
    return vaefast.VAE(D, hidden=(32,), latent_dim=5, likelihood="zinb", seed=4,
                       categorical_covariates=(2,), use_batch_norm="both",
                       dropout_rate=0.1)


def fitted(X, codes, **kw):
    m = scvi_model()
    h = m.fit(X, epochs=2, batch_size=BATCH, progress=False, codes=codes, **kw)
    return m.get_weights(), h.history["loss"]


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_core_gather_is_bit_identical_to_the_python_gather(counts, codes, kernel_set,
                                                           csr_calls):
    X = sp.csr_matrix(counts)
    got, loss_got = fitted(X, codes)
    assert csr_calls == [slice(0, N)] * 2  # the whole matrix once per epoch
    csr_calls.clear()
    # buffer_rows: the rows are gathered in Python, one batch per read
    want, loss_want = fitted(X, codes, buffer_rows=BATCH)
    assert len(csr_calls) == 2 * 5
    assert_same(got, want)
    np.testing.assert_array_equal(loss_got, loss_want)


def test_core_gather_from_anndata(counts, codes, csr_calls):
    """The scVI model as from_anndata builds it on a CSR AnnData."""
    ad = pytest.importorskip("anndata")
    pd = pytest.importorskip("pandas")
    obs = pd.DataFrame({"batch": pd.Categorical(np.array(["a", "b"])[codes[:, 0]])},
                       index=[f"cell{i}" for i in range(N)])
    adata = ad.AnnData(sp.csr_matrix(counts), obs=obs)
    fits = []
    for kw in ({}, {"buffer_rows": BATCH}):
        m = vaefast.VAE.from_anndata(adata, batch_key="batch", hidden=(32,), latent_dim=5,
                                     likelihood="zinb", seed=4)
        m.fit(adata, epochs=2, batch_size=BATCH, progress=False, **kw)
        fits.append(m.get_weights())
    assert csr_calls[:2] == [slice(0, N)] * 2
    assert_same(fits[0], fits[1])


def test_other_matrices_keep_the_python_gather(counts, codes, csr_calls):
    """float64 values or unsorted column indices would need a copy of the
    whole matrix's entries: such a matrix is gathered a batch at a time in
    Python (converted, sorted) a buffer at a time (here the 300 rows fit one
    buffer: one gather per epoch), with the same weights."""
    want, _ = fitted(sp.csr_matrix(counts), codes)
    X64 = sp.csr_matrix(counts.astype(np.float64))
    csr_calls.clear()
    got, _ = fitted(X64, codes)
    assert len(csr_calls) == 2
    assert_same(got, want)
    unsorted = sp.csr_matrix(counts)
    lo = unsorted.indptr[int(np.argmax(np.diff(unsorted.indptr) >= 2))]
    unsorted.indices[[lo, lo + 1]] = unsorted.indices[[lo + 1, lo]]
    unsorted.data[[lo, lo + 1]] = unsorted.data[[lo + 1, lo]]
    unsorted.has_sorted_indices = False
    csr_calls.clear()
    got, _ = fitted(unsorted, codes)
    assert len(csr_calls) == 2
    assert_same(got, want)


def core_steps(m, X, order, csr, codes, n_steps):
    """n_steps core steps from the start; (done, status, params)."""
    core = internals(m).core
    sums = np.zeros(3)
    done, status = core.train_steps(X, order, BATCH, 0, n_steps, 4, 0, 1e-3, 0.9, 0.999,
                                    1e-8, 0.0, "adam", 1.0, sums, (None, codes), None, csr)
    return done, status, core.get_buffer(PARAMS)


def test_core_call_without_X(counts, codes, threads_setting):
    """train_steps(None, order, csr=whole matrix) against one call per
    batch with the batch's dense rows and CSR rows; and without an order,
    against the dense X itself; on 1 and 2 threads."""
    X = sp.csr_matrix(counts)
    whole = gather_csr_rows(X, slice(0, N))
    order = np.random.default_rng(8).permutation(N).astype(np.int64)
    for threads in (1, 2):
        vaefast.set_num_threads(threads)
        m = scvi_model()
        start = internals(m).core.get_buffer(PARAMS)
        done, status, got = core_steps(m, None, order, whole, codes, 5)
        assert (done, status) == (5, 0)
        assert not np.array_equal(got, start)
        ref = scvi_model()
        for k in range(5):
            rows = order[k * BATCH:(k + 1) * BATCH]
            core = internals(ref).core
            assert core.train_steps(counts[rows], None, BATCH, 0, 1, 4, k, 1e-3, 0.9, 0.999,
                                    1e-8, 0.0, "adam", 1.0, np.zeros(3),
                                    (None, codes[rows]), None,
                                    gather_csr_rows(X, rows)) == (1, 0)
        np.testing.assert_array_equal(got, core.get_buffer(PARAMS))
        in_order, dense = scvi_model(), scvi_model()
        np.testing.assert_array_equal(core_steps(in_order, None, None, whole, codes, 5)[2],
                                      core_steps(dense, counts, None, whole, codes, 5)[2])


def test_bad_arrays_fail_before_any_step(counts, codes):
    X = sp.csr_matrix(counts)
    m = scvi_model()
    core = internals(m).core
    start = core.get_buffer(PARAMS)
    with pytest.raises(ValueError, match="X must be given unless csr is"):
        core_steps(m, None, None, None, codes, 1)
    narrow = gather_csr_rows(sp.csr_matrix(counts[:, :D - 1]), slice(0, N))
    with pytest.raises(ValueError, match=f"csr must have {D} columns"):
        core_steps(m, None, None, narrow, codes, 1)
    order = np.arange(N, dtype=np.int64)
    # a column index past D in the row the first step reads: refused (no write)
    data, indices, indptr = (a.copy() for a in gather_csr_rows(X, slice(0, N)))
    indices[indptr[1] - 1] = D
    wide = type(narrow)(data, indices, indptr, (N, D))
    done, status, params = core_steps(m, None, order, wide, codes, 1)
    assert done == 0 and status != 0
    with pytest.raises(ValueError, match="training step"):
        _core.status_error(status, "training step")
    # a row ending before it starts, read by the second step: the call is refused
    bad_ptr = gather_csr_rows(X, slice(0, N)).indptr.copy()
    bad_ptr[BATCH + 1] = bad_ptr[BATCH] - 1
    bent = type(narrow)(data, gather_csr_rows(X, slice(0, N)).indices, bad_ptr, (N, D))
    done, status, params = core_steps(m, None, order, bent, codes, 2)
    assert done == 0 and status != 0
    # an order entry outside [0, N)
    bad_order = order.copy()
    bad_order[3] = N
    done, status, params = core_steps(m, None, bad_order, gather_csr_rows(X, slice(0, N)),
                                      codes, 1)
    assert done == 0 and status != 0
    np.testing.assert_array_equal(params, start)
