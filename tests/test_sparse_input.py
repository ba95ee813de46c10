"""Every input kind X can take (vaefast/_rows.py, vaefast/_gathered.py):
dense, scipy CSR / CSC / COO (matrix and sparray), AnnData (.X, a layer, a
view, a backed file), a Dask array.

Oracle: the same call on the dense NumPy array. Sparse and AnnData input is
made dense one batch (fit) or one chunk (inference) at a time and goes
through the same float32 code on the same rows in the same order, so the
results must be equal bit for bit: encodings, reconstructions, the seeded
ELBO and log-likelihood, and the weights of a seeded fit (on every kernel
set). Nothing here is a tolerance: any difference is a bug. (Inference on
sparse rows runs the encoder's first layer on the CSR chunk; at D = 40 its
sums add the same non-zero products in the same order as the GEMM, and a
zero product adds nothing, so it is exact here too; at 2,000 genes it is
not, and tests/test_sparse_inference.py states and tests the bound.) The
memory test asserts that no dense copy of the whole matrix is made.
"""

import tracemalloc

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse")

import vaefast  # noqa: E402
from vaefast import _rows  # noqa: E402

_rows_take_csr = _rows.Rows.take_csr  # the unpatched method, for spies

D = 40


def _anndata():
    return pytest.importorskip("anndata", reason="anndata is not installed "
                               "(pip install 'vaefast[anndata]')")


@pytest.fixture(scope="module")
def counts():
    """(300, D) counts, about 90% zeros, no empty column."""
    rng = np.random.default_rng(7)
    X = rng.poisson(3.0, (300, D)).astype(np.float32) + 1
    X[rng.random(X.shape) >= 0.1] = 0
    return X


def model(likelihood="poisson", **kw):
    return vaefast.VAE(D, hidden=(16,), latent_dim=4, likelihood=likelihood, seed=3, **kw)


@pytest.fixture(scope="module")
def fitted(counts):
    m = model()
    m.fit(counts, epochs=1, batch_size=64, progress=False)
    return m


@pytest.fixture(scope="module")
def h5ad(counts, tmp_path_factory):
    """A small .h5ad with X = CSR counts and layers["counts"] = the same as CSC."""
    ad = _anndata()
    a = ad.AnnData(X=sp.csr_matrix(counts))
    a.layers["counts"] = sp.csc_matrix(counts)
    path = tmp_path_factory.mktemp("h5ad") / "counts.h5ad"
    a.write_h5ad(path)
    return path


# name -> (make(counts, h5ad path) -> X, extra keyword arguments)
def _in_memory_anndata(X, path=None):
    a = _anndata().AnnData(X=np.zeros_like(X))
    a.layers["counts"] = sp.csr_matrix(X)
    return a


KINDS = {
    "csr_matrix": lambda X, p: sp.csr_matrix(X),
    "csr_array": lambda X, p: sp.csr_array(X),
    "csc_matrix": lambda X, p: sp.csc_matrix(X),
    "csc_array": lambda X, p: sp.csc_array(X),
    "coo_matrix": lambda X, p: sp.coo_matrix(X),
    "anndata_dense": lambda X, p: _anndata().AnnData(X=X.copy()),
    "anndata_csr": lambda X, p: _anndata().AnnData(X=sp.csr_matrix(X)),
    "anndata_layer": _in_memory_anndata,
    "anndata_backed": lambda X, p: _anndata().read_h5ad(p(), backed="r"),
}
LAYER = {"anndata_layer": "counts"}


def make(kind, counts, h5ad_path):
    return KINDS[kind](counts, h5ad_path), ({"layer": LAYER[kind]} if kind in LAYER else {})


@pytest.fixture
def h5ad_path(request):
    return lambda: request.getfixturevalue("h5ad")


def assert_same(got, want):
    if isinstance(want, tuple):
        for g, w in zip(got, want):
            assert_same(g, w)
        return
    assert isinstance(got, np.ndarray) and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", list(KINDS))
def test_inference_equals_dense(kind, fitted, counts, h5ad_path):
    X, kw = make(kind, counts, h5ad_path)
    m = fitted
    assert_same(m.encode(X, **kw), m.encode(counts))
    assert_same(m.transform(X, **kw), m.transform(counts))
    assert_same(m.reconstruct(X, **kw), m.reconstruct(counts))
    assert_same(m.elbo(X, seed=5, **kw), m.elbo(counts, seed=5))
    assert_same(m.log_likelihood(X, n_samples=7, seed=5, **kw),
                m.log_likelihood(counts, n_samples=7, seed=5))
    s = np.linspace(0.5, 2.0, counts.shape[0])
    assert_same(m.elbo(X, seed=1, size_factors=s, **kw), m.elbo(counts, seed=1, size_factors=s))


def test_inference_in_chunks_equals_dense(fitted, counts, monkeypatch):
    """Many chunks (the noise generator continues across them)."""
    monkeypatch.setattr(_rows, "_CHUNK_BYTES", 4 * D * 37)  # 37 rows per chunk
    X = sp.csr_matrix(counts)
    assert_same(fitted.encode(X), fitted.encode(counts))
    assert_same(fitted.elbo(X, seed=2), fitted.elbo(counts, seed=2))
    assert_same(fitted.log_likelihood(X, n_samples=3, seed=2),
                fitted.log_likelihood(counts, n_samples=3, seed=2))
    eps = np.random.default_rng(0).standard_normal((counts.shape[0], 4)).astype(np.float32)
    assert_same(fitted.elbo(X, eps=eps), fitted.elbo(counts, eps=eps))


def test_anndata_view(fitted, counts):
    ad = _anndata()
    a = ad.AnnData(X=sp.csr_matrix(counts))
    rows = np.arange(10, 250, 3)
    view = a[rows]
    assert view.is_view
    assert_same(fitted.encode(view), fitted.encode(counts[rows]))
    assert_same(fitted.elbo(view, seed=4), fitted.elbo(counts[rows], seed=4))


def test_backed_view(fitted, counts, h5ad):
    ad = _anndata()
    b = ad.read_h5ad(h5ad, backed="r")
    assert_same(fitted.transform(b[20:120]), fitted.transform(counts[20:120]))
    assert_same(fitted.transform(b, layer="counts"), fitted.transform(counts))


def test_dask_array(fitted, counts):
    da = pytest.importorskip("dask.array")
    dX = da.from_array(counts, chunks=(70, D))
    assert_same(fitted.transform(dX).compute(), fitted.transform(counts))
    assert_same(fitted.elbo(dX, seed=3).compute(), fitted.elbo(counts, seed=3))


def fit_weights(X, epochs=2, likelihood="poisson", model_kw=None, **kw):
    """Weights and history of a seeded fit; sparse X on the dense-batch path
    (bit-identical to the dense fit) unless sparse_first_layer=True is passed."""
    kw.setdefault("sparse_first_layer", False)
    m = model(likelihood, **(model_kw or {}))
    h = m.fit(X, epochs=epochs, batch_size=48, progress=False, **kw)
    return m.get_weights(), h


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("kind", ["csr_matrix", "csc_array", "anndata_layer", "anndata_backed"])
def test_seeded_fit_bit_identical_on_every_kernel_set(kind, kernel_set, counts, h5ad_path):
    X, kw = make(kind, counts, h5ad_path)
    want, h_want = fit_weights(counts)
    got, h_got = fit_weights(X, **kw)
    assert_same_weights(got, want)
    assert h_got.history["loss"] == h_want.history["loss"]


@pytest.mark.parametrize("shuffle", [True, False])
def test_fit_with_side_inputs_and_validation(counts, shuffle):
    """Conditions, size factors, a sparse validation set, several batches per buffer."""
    rng = np.random.default_rng(1)
    c = rng.random((counts.shape[0], 2)).astype(np.float32)
    s = rng.uniform(0.5, 2.0, counts.shape[0]).astype(np.float32)
    V = counts[:50]
    opts = dict(model_kw={"n_conditions": 2}, c=c, size_factors=s, shuffle=shuffle,
                likelihood="negative_binomial")
    want, h_want = fit_weights(counts, validation_data=(V, c[:50], s[:50]), **opts)
    got, h_got = fit_weights(sp.csr_matrix(counts), buffer_rows=96,
                             validation_data=(sp.csr_matrix(V), c[:50], s[:50]), **opts)
    assert_same_weights(got, want)
    assert h_got.history["val_loss"] == h_want.history["val_loss"]


def test_dask_fit_matches_when_one_buffer(counts):
    """The Dask path takes arrays; an epoch that fits one buffer is exact."""
    da = pytest.importorskip("dask.array")
    want, _ = fit_weights(counts)
    got, _ = fit_weights(da.from_array(counts, chunks=(70, D)))
    assert_same_weights(got, want)


def test_data_parallel_shard(counts, threads_setting):
    """A CSR shard trains as the dense shard (one rank, MPI.COMM_SELF)."""
    MPI = pytest.importorskip("mpi4py.MPI")
    want, _ = fit_weights(counts, comm=MPI.COMM_SELF)
    got, _ = fit_weights(sp.csr_matrix(counts), comm=MPI.COMM_SELF)
    assert_same_weights(got, want)


def test_sklearn_transformer(counts):
    pytest.importorskip("sklearn")
    from vaefast.sklearn import VAETransformer

    est = VAETransformer(hidden=(16,), latent_dim=4, likelihood="poisson", epochs=1,
                         random_state=0).fit(counts)
    assert_same(est.transform(sp.csr_matrix(counts)), est.transform(counts))
    assert_same(est.score_samples(sp.csc_matrix(counts)), est.score_samples(counts))


# ---------------------------------------------------------------- memory
def test_no_dense_copy_of_the_matrix(monkeypatch):
    """A 10,000 x 4,000 CSR at 0.5% density: 160 MB dense, 1.6 MB of entries.
    Fit and encode must stay far below the dense size (traced by
    tracemalloc, which sees NumPy's allocations), and every gather is of at
    most one batch (fit) or one chunk (encode)."""
    n, d, batch = 10000, 4000, 128
    X = sp.random(n, d, density=0.005, format="csr", dtype=np.float32,
                  random_state=np.random.default_rng(0))
    X.data[:] = np.ceil(X.data * 5)
    m = vaefast.VAE(d, hidden=(8,), latent_dim=2, likelihood="poisson", seed=0)
    sizes = dense_batch_sizes(monkeypatch)
    dense_bytes = n * d * 4
    m.transform(X[:1].toarray())  # the model's inference workspace (for 4096 rows), made once
    tracemalloc.start()
    try:
        m.fit(X, epochs=1, batch_size=batch, progress=False, sparse_first_layer=False)
        _, fit_peak = tracemalloc.get_traced_memory()
        assert max(sizes) == batch and sum(sizes) == n
        tracemalloc.reset_peak()
        sizes.clear()
        monkeypatch.undo()  # inference gathers CSR chunks (the CSR first layer)
        monkeypatch.setattr(_rows.Rows, "take", None)  # would fail if called
        monkeypatch.setattr(_rows.Rows, "take_csr",
                            lambda self, rows: sizes.append(rows.stop - rows.start)
                            or _rows_take_csr(self, rows))
        mu = m.transform(X)
        _, encode_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert mu.shape == (n, 2)
    assert max(sizes) == _rows.chunk_rows(d, 4096) and sum(sizes) == n
    assert fit_peak < dense_bytes / 20, fit_peak
    assert encode_peak < dense_bytes / 20, encode_peak
    monkeypatch.undo()  # the default fit: CSR batches for the first layer too
    tracemalloc.start()
    try:
        m.fit(X, epochs=1, batch_size=batch, progress=False)
        _, csr_fit_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert csr_fit_peak < dense_bytes / 20, csr_fit_peak


def test_import_vaefast_imports_neither_scipy_nor_anndata(run_python):
    proc = run_python("import sys, vaefast; "
                      "print([m for m in ('scipy', 'anndata', 'h5py', 'pandas') "
                      "if m in sys.modules])")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ---------------------------------------------------------------- bad input
def test_wrong_number_of_genes(fitted, counts):
    X = sp.csr_matrix(counts[:, :-1])
    with pytest.raises(ValueError, match=f"X must have {D} columns"):
        model().fit(X, epochs=1, progress=False)
    with pytest.raises(ValueError, match=f"X must have {D} columns"):
        fitted.transform(X)
    with pytest.raises(ValueError, match=f"validation_data must have {D} columns"):
        model().fit(sp.csr_matrix(counts), epochs=1, progress=False, validation_data=X)


def test_non_2d(fitted, tmp_path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["v"] = np.ones(D, np.float32)
        with pytest.raises(ValueError, match="X must be 2-dimensional"):
            fitted.transform(f["v"])
        with pytest.raises(ValueError, match="X must be 2-dimensional"):
            model().fit(f["v"], progress=False)


@pytest.mark.parametrize("value, message", [(-1.0, "X must be non-negative counts"),
                                            (np.nan, "X contains NaN or infinity")])
def test_bad_values_refused_before_any_step(counts, value, message):
    X = sp.csr_matrix(counts)
    X.data[-1] = value  # the last row: found before the first step, not at it
    m = model()
    before = m.get_weights()
    with pytest.raises(ValueError, match=message):
        m.fit(X, epochs=1, progress=False)
    assert m.step_ == 0
    assert_same_weights(m.get_weights(), before)


def test_bernoulli_targets_checked(counts):
    with pytest.raises(ValueError, match=r"X must lie in \[0, 1\]"):
        model("bernoulli").fit(sp.csr_matrix(counts), progress=False)


def test_duplicate_indices_refused_unsorted_accepted(fitted, counts):
    X = sp.csr_matrix(counts)
    r = int(np.argmax(np.diff(X.indptr) >= 2))
    lo = X.indptr[r]
    dup = sp.csr_matrix((X.data.copy(), X.indices.copy(), X.indptr.copy()), shape=X.shape)
    dup.indices[lo + 1] = dup.indices[lo]
    dup.has_canonical_format = False
    with pytest.raises(ValueError, match=f"X has duplicate column indices in row {r}"):
        model().fit(dup, progress=False)
    unsorted = sp.csr_matrix((X.data.copy(), X.indices.copy(), X.indptr.copy()),
                             shape=X.shape)
    unsorted.indices[[lo, lo + 1]] = unsorted.indices[[lo + 1, lo]]
    unsorted.data[[lo, lo + 1]] = unsorted.data[[lo + 1, lo]]
    unsorted.has_sorted_indices = False
    assert_same(fitted.transform(unsorted), fitted.transform(counts))
    want, _ = fit_weights(counts, epochs=1)
    got, _ = fit_weights(unsorted, epochs=1)
    assert_same_weights(got, want)


def test_missing_layer_and_layer_without_anndata(fitted, counts):
    ad = _anndata()
    a = ad.AnnData(X=sp.csr_matrix(counts))
    with pytest.raises(KeyError, match="layer='counts' is not a layer of X"):
        model().fit(a, layer="counts", progress=False)
    with pytest.raises(KeyError, match="layer='raw' is not a layer of X"):
        fitted.transform(a, layer="raw")
    with pytest.raises(ValueError, match="layer='counts' applies only when X is an AnnData"):
        model().fit(sp.csr_matrix(counts), layer="counts", progress=False)
    with pytest.raises(TypeError, match="layer must be a str"):
        model().fit(a, layer=3, progress=False)


def test_per_row_argument_length(fitted, counts):
    with pytest.raises(ValueError, match="size_factors must have 300 rows"):
        fitted.elbo(sp.csr_matrix(counts), size_factors=np.ones(299))


def test_empty_matrix(fitted):
    with pytest.raises(ValueError, match="X must not be empty"):
        fitted.transform(sp.csr_matrix((0, D), dtype=np.float32))
    with pytest.raises(ValueError, match="X must not be empty"):
        model().fit(sp.csr_matrix((0, D), dtype=np.float32), progress=False)


def test_scipy_not_imported_by_detection():
    """Detection is by module name and attributes: a duck-typed CSR object
    (vaefast's own CSRBatch) is taken as sparse without scipy."""
    from vaefast._sparse_batch import gather_csr_rows

    batch = gather_csr_rows(sp.csr_matrix(np.eye(3, dtype=np.float32)), slice(0, 3))
    assert _rows.is_gatherable(batch) and isinstance(_rows.resolve(batch), _rows.Rows)
    assert not _rows.is_gatherable(np.eye(3))


def test_single_cell_doc_example_runs(run_python):
    """docs/single-cell.md's worked example runs and prints what it says."""
    _anndata()
    import pathlib
    import re

    doc = (pathlib.Path(__file__).parents[1] / "docs" / "single-cell.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    zeros, shapes = proc.stdout.splitlines()
    assert zeros == "92% zeros" and f"# {zeros}" in code  # the doc shows what it prints
    assert shapes.startswith("(2000, 10) (1043, 10) separation ")
    # the kernel set may move the last digit; the types must stay well apart
    assert float(shapes.split()[-1]) > 8


# ---------------------------------------------------------------- CSR first layer
# With sparse X, fit runs the first encoder layer's forward and weight
# gradient on the batch's stored entries (csrc/vae_csr.c). Oracle: the dense
# path on the same batch. Their first-layer outputs differ only by float32
# rounding: the summation order, and log1p evaluated as the CSR kernels do
# (log w + (v - (w - 1))/w, a few ulp from the dense path's logf(1 + v)),
# |diff| <= (n + 4)·u·S per entry (tests/test_csr.py), n <= 40 stored
# entries per row here, so about 3e-6·S. To first order that perturbs the
# loss and every gradient by a few times that, relatively: the tests allow
# 1e-5 of each gradient tensor's largest entry and 1e-6 of the loss.
def _csr_loss_and_grad(m, X, eps, csr):
    from vaefast._internals import GRADS, internals
    from vaefast._sparse_batch import gather_csr_rows

    core = internals(m).core
    batch = gather_csr_rows(sp.csr_matrix(X), slice(0, X.shape[0])) if csr else None
    loss, _, _ = core.loss_and_grad(X, eps, m.seed, 0, 1.0, None, None, batch)
    return loss, internals(m).named(core.get_buffer(GRADS))


def _first_rows(counts, likelihood):
    """64 rows valid for the likelihood: 0/1 for Bernoulli; for the scVI
    likelihoods, whose library is the row total, no empty row."""
    X = counts[:64].copy()
    if likelihood == "bernoulli":
        return (X > 0).astype(np.float32)
    if likelihood.startswith(("zinb", "scvi")):
        X[:, 0] += 1
    return X


@pytest.mark.parametrize("likelihood", ["poisson", "negative_binomial", "gaussian",
                                        "bernoulli", "zinb", "scvi_nb", "scvi_poisson"])
@pytest.mark.parametrize("hidden", [(16, 8), ()])
def test_csr_first_layer_gradient_matches_dense(counts, kernel_set, likelihood, hidden):
    X = _first_rows(counts, likelihood)
    m = vaefast.VAE(D, hidden=hidden, latent_dim=4, likelihood=likelihood, seed=5)
    eps = np.random.default_rng(2).standard_normal((64, 4)).astype(np.float32)
    want_loss, want = _csr_loss_and_grad(m, X, eps, csr=False)
    got_loss, got = _csr_loss_and_grad(m, X, eps, csr=True)
    assert abs(got_loss - want_loss) <= 1e-6 * abs(want_loss)
    for k in want:
        scale = np.abs(want[k]).max()
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=1e-5 * scale + 1e-30,
                                   err_msg=k)


@pytest.mark.parametrize("kind", ["csr_matrix", "csc_array", "anndata_backed"])
def test_csr_first_layer_fit_close_to_dense(kind, kernel_set, counts, h5ad_path):
    """2 epochs of 7 Adam steps (lr 1e-3): each step moves a weight by about
    lr at most, and the two paths' gradients agree to 1e-5 relatively, so
    the weights may drift apart by far less than steps·lr·1e-3 = 1.4e-5
    (measured here: at most 3e-8, i.e. a float32 ulp or two)."""
    X, kw = make(kind, counts, h5ad_path)
    want, h_want = fit_weights(counts)
    got, h_got = fit_weights(X, sparse_first_layer=True, **kw)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=14 * 1e-3 * 1e-3, err_msg=k)
    np.testing.assert_allclose(h_got.history["loss"], h_want.history["loss"], rtol=1e-6)


@pytest.mark.parametrize("kind", ["csr_matrix", "csc_array"])
def test_empty_cell_refused_for_the_observed_library(kind, counts):
    """The scVI likelihoods' library is a row's total: an empty row is named
    before any step, from the sparse matrix's stored values alone."""
    X = _first_rows(counts, "zinb")
    X[5] = 0
    m = model("zinb")
    with pytest.raises(ValueError, match=r"X has 1 row\(s\) of zero total count \(first: row 5\)"):
        m.fit(make(kind, X, None)[0], epochs=1, batch_size=32, progress=False)
    assert m.step_ == 0


def test_csr_first_layer_used_and_thread_count_free(counts, threads_setting, csr_calls):
    """The CSR rows reach the core (the whole in-memory matrix as a view,
    once per epoch: the core gathers each batch, csrc/vae_csr_steps.c), and
    the result is the same bit for bit on 1 and 2 threads."""
    fits = []
    for threads in (1, 2):
        vaefast.set_num_threads(threads)
        fits.append(fit_weights(sp.csr_matrix(counts), sparse_first_layer=True)[0])
    assert csr_calls == [slice(0, 300)] * (2 * 2)  # 2 fits x 2 epochs
    assert_same_weights(fits[0], fits[1])


def test_csr_first_layer_unsorted_indices(counts):
    X = sp.csr_matrix(counts)
    lo = X.indptr[int(np.argmax(np.diff(X.indptr) >= 2))]
    X.indices[[lo, lo + 1]] = X.indices[[lo + 1, lo]]
    X.data[[lo, lo + 1]] = X.data[[lo + 1, lo]]
    X.has_sorted_indices = False
    got, _ = fit_weights(X, sparse_first_layer=True)
    want, _ = fit_weights(sp.csr_matrix(counts), sparse_first_layer=True)
    assert_same_weights(got, want)


def test_conditional_model_uses_the_dense_batch(counts, monkeypatch):
    c = np.random.default_rng(0).random((counts.shape[0], 2)).astype(np.float32)
    want, _ = fit_weights(counts, model_kw={"n_conditions": 2}, c=c)
    sizes = dense_batch_sizes(monkeypatch)
    got, _ = fit_weights(sp.csr_matrix(counts), model_kw={"n_conditions": 2}, c=c,
                         sparse_first_layer=True)
    assert_same_weights(got, want)
    # each batch alone made dense (48 rows, the last one the rest), both epochs
    n = counts.shape[0]
    assert max(sizes) == 48 and sum(sizes) == 2 * n and len(sizes) == 2 * -(-n // 48)


def dense_batch_sizes(monkeypatch):
    """Records the rows of every batch fit makes dense from CSR rows
    (training/streaming.py _dense_batch), in a list it returns."""
    from vaefast.training import streaming

    sizes = []
    dense_batch = streaming._dense_batch

    def spy(csr, sel):
        out = dense_batch(csr, sel)
        sizes.append(out.shape[0])
        return out

    monkeypatch.setattr(streaming, "_dense_batch", spy)
    return sizes
