"""The CSR first layer for models with categorical covariates (scVI's
``encode_covariates=False``: the codes enter the decoder's layers only; and
``encode_covariates=True``: the first layer adds its covariate rows after
the CSR product, csrc/vae_csr.c) and
for a normalised first layer (scVI's ``use_batch_norm="both"``): training
steps, fit, and the sparse inference of vaefast/_sparse_infer.py
(encode, transform, reconstruct, elbo) with ``codes=``.

Oracle: the same call on the dense array with the same codes. The two paths
differ only in the first layer's float32 sums, each output within
(n + 4)·u·S of the exact sum (tests/test_csr.py), about 1.2e-5 of the terms'
magnitude for n = 200 stored entries; the layers after it (and a batch norm,
which divides by a batch standard deviation of order the outputs' spread)
carry that relative difference through with factors of order 1 here. So, as
tests/test_sparse_inference.py and tests/test_sparse_input.py state: outputs
and gradients within 1e-5 of their largest magnitude (plus 1e-6 absolute
for outputs), the ELBO and loss within 1e-6 relatively, and two short Adam
fits within steps·lr·1e-3 per weight. The codes are a real input here: a
test checks that other codes change the output by far more than the bound,
so a path that dropped them would fail.
"""

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse")

import vaefast  # noqa: E402
from vaefast import _rows  # noqa: E402
from vaefast._internals import GRADS, internals  # noqa: E402
from vaefast._sparse_batch import gather_csr_rows  # noqa: E402

D, N, LEVELS = 2000, 300, (3, 2)
# first-layer options: plain, scVI's batch norm and dropout, layer norm
NORMS = {"plain": {}, "batchnorm": {"use_batch_norm": "both", "dropout_rate": 0.1},
         "layernorm": {"use_layer_norm": "encoder"}}


@pytest.fixture(scope="module")
def counts():
    """(N, D) counts, about 90% zeros, no empty row."""
    rng = np.random.default_rng(13)
    X = rng.negative_binomial(2.0, 0.3, (N, D)).astype(np.float32) + 1
    X[rng.random(X.shape) >= 0.1] = 0
    X[:, 0] += 1
    return X


@pytest.fixture(scope="module")
def codes():
    rng = np.random.default_rng(5)
    return np.stack([rng.integers(0, n, N) for n in LEVELS], axis=1).astype(np.int32)


def model(likelihood="zinb", norm="plain", deep=True, encode=False, **kw):
    return vaefast.VAE(D, hidden=(32,), latent_dim=5, likelihood=likelihood, seed=4,
                       categorical_covariates=LEVELS, deeply_inject_covariates=deep,
                       encode_covariates=encode, **NORMS[norm], **kw)


def trained(likelihood, norm, deep, counts, codes, encode=False):
    """A model one epoch into training (dense), so that batch norm's running
    statistics and the covariate rows are not their initial values."""
    m = model(likelihood, norm, deep, encode)
    m.fit(counts, epochs=1, batch_size=64, progress=False, codes=codes)
    return m


@pytest.mark.parametrize("norm", list(NORMS))
@pytest.mark.parametrize("deep,encode", [(True, False), (False, False), (True, True)])
@pytest.mark.parametrize("likelihood", ["zinb", "negative_binomial"])
def test_sparse_inference_with_codes_close_to_dense(counts, codes, kernel_set, likelihood,
                                                    norm, deep, encode, monkeypatch, close_to):
    m = trained(likelihood, norm, deep, counts, codes, encode)
    want = {"encode": m.encode(counts, codes=codes),
            "transform": m.transform(counts, codes=codes),
            "reconstruct": m.reconstruct(counts, codes=codes),
            "elbo": m.elbo(counts, seed=3, codes=codes)}
    monkeypatch.setattr(_rows.Rows, "take", lambda self, rows: pytest.fail("dense chunk"))
    X = sp.csr_matrix(counts)
    close_to(m.encode(X, codes=codes), want["encode"])
    close_to(m.transform(X, codes=codes), want["transform"])
    close_to(m.reconstruct(X, codes=codes), want["reconstruct"])
    np.testing.assert_allclose(m.elbo(X, seed=3, codes=codes), want["elbo"], rtol=1e-6)


def test_codes_reach_the_sparse_decoder(counts, codes, no_dense_chunks):
    """Other codes move the reconstruction far beyond the bound above: the
    sparse path's agreement with the dense one is not by ignoring them."""
    m = trained("zinb", "batchnorm", True, counts, codes)
    X = sp.csr_matrix(counts)
    want = m.reconstruct(X, codes=codes)
    other = m.reconstruct(X, codes=(codes + 1) % np.array(LEVELS, dtype=np.int32))
    assert np.abs(other - want).max() > 1e-3 * np.abs(want).max()
    with pytest.raises(ValueError, match="codes is required"):
        m.reconstruct(X)


def _loss_and_grad(m, X, codes, csr):
    core = internals(m).core
    batch = gather_csr_rows(sp.csr_matrix(X), slice(0, X.shape[0])) if csr else None
    eps = np.random.default_rng(2).standard_normal((X.shape[0], 5)).astype(np.float32)
    loss, _, _ = core.loss_and_grad(X, eps, m.seed, 0, 1.0, (None, codes), None, batch)
    return loss, internals(m).named(core.get_buffer(GRADS))


def _batch_norm_gain(m, X):
    """How much a batch norm on the first layer magnifies the sums' rounding:
    each output's error is a fraction (n + 4)·u of its terms' magnitude S,
    and the norm divides it by the column's batch standard deviation, not
    by S: the largest S / std over the columns (about 4 here), at least 1."""
    w = m.get_weights()
    T = np.log1p(X.astype(np.float64))
    W, b = w["encoder.0.weight"].astype(np.float64), w["encoder.0.bias"].astype(np.float64)
    S = T @ np.abs(W) + np.abs(b)
    return max(1.0, float((S.max(axis=0) / (T @ W + b).std(axis=0)).max()))


@pytest.mark.parametrize("encode", [False, True])
@pytest.mark.parametrize("norm", list(NORMS))
@pytest.mark.parametrize("likelihood", ["zinb", "scvi_nb", "negative_binomial", "poisson"])
def test_training_step_gradient_with_codes_matches_dense(counts, codes, kernel_set,
                                                         likelihood, norm, encode):
    X, k = counts[:64], np.ascontiguousarray(codes[:64])
    m = model(likelihood, norm, encode=encode)
    want_loss, want = _loss_and_grad(m, X, k, csr=False)
    got_loss, got = _loss_and_grad(m, X, k, csr=True)
    assert abs(got_loss - want_loss) <= 1e-6 * abs(want_loss)
    rel = 1e-5 * _batch_norm_gain(m, X) if norm == "batchnorm" else 1e-5
    for name in want:
        scale = np.abs(want[name]).max()
        if norm == "batchnorm" and name in ("encoder.0.bias", "decoder.0.bias"):
            # exactly 0 (batch norm removes a constant shift of its input):
            # both are rounding noise, about B·u of the dZ terms that also
            # make up the layer's dW (times inputs of order 1)
            bound = 1e-5 * np.abs(want[name.replace("bias", "weight")]).max()
            assert np.abs(got[name]).max() <= bound and scale <= bound
            continue
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=rel * scale + 1e-30,
                                   err_msg=name)


def fit_weights(X, codes, norm, sparse_first_layer, epochs=2, encode=False):
    m = model("zinb", norm, encode=encode)
    h = m.fit(X, epochs=epochs, batch_size=48, progress=False, codes=codes,
              sparse_first_layer=sparse_first_layer)
    return m, h


@pytest.mark.parametrize("norm,encode", [("plain", False), ("batchnorm", False),
                                         ("plain", True), ("batchnorm", True)])
def test_fit_from_csr_with_codes_close_to_dense(counts, codes, kernel_set, norm, encode,
                                                csr_calls):
    """2 epochs of 7 Adam steps (lr 1e-3) whose gradients agree to 1e-5
    relatively: the weights may drift apart by far less than
    steps·lr·1e-3 = 1.4e-5 (tests/test_sparse_input.py's bound). The CSR
    rows reach the core: the whole matrix once per epoch, which the core
    gathers a batch at a time (csrc/vae_csr_steps.c)."""
    want, h_want = fit_weights(counts, codes, norm, False, encode=encode)
    csr_calls.clear()
    got, h_got = fit_weights(sp.csr_matrix(counts), codes, norm, True, encode=encode)
    assert csr_calls == [slice(0, N)] * 2
    assert_fits_close(got, want, 14, norm == "batchnorm")
    np.testing.assert_allclose(h_got.history["loss"], h_want.history["loss"], rtol=1e-6)


# A batch-normalised layer's bias has gradient exactly 0 (the norm removes
# a constant shift): both paths feed Adam rounding noise there, which it
# scales to steps of about lr in an arbitrary direction. The bias has no
# effect on the layer's training output, so it is left out of the weight
# comparison; the fits' per-epoch training losses are compared instead.
_NOISE_ONLY = ("encoder.0.bias", "decoder.0.bias")


def assert_fits_close(got, want, steps, batch_norm):
    """Weights within steps·lr·1e-3 (lr 1e-3); with batch norm, the noise-only
    biases left out."""
    w_got, w_want = got.get_weights(), want.get_weights()
    for k in w_want:
        if not (batch_norm and k in _NOISE_ONLY):
            np.testing.assert_allclose(w_got[k], w_want[k], rtol=0, atol=steps * 1e-3 * 1e-3,
                                       err_msg=k)


def test_sparse_fit_thread_count_free(counts, codes, threads_setting):
    fits = []
    for threads in (1, 2):
        vaefast.set_num_threads(threads)
        fits.append(fit_weights(sp.csr_matrix(counts), codes, "batchnorm", True,
                                epochs=1, encode=True)[0].get_weights())
    for k in fits[0]:
        np.testing.assert_array_equal(fits[0][k], fits[1][k], err_msg=k)


def test_from_anndata_model_takes_the_sparse_path(counts, codes, monkeypatch, csr_calls,
                                                  close_to):
    """A from_anndata model (scVI's defaults: batch norm on both sides,
    dropout, a batch covariate) on a CSR AnnData: fit and
    get_latent_representation run the CSR first layer (spied), and agree
    with the dense-batch path within the bounds above."""
    ad = pytest.importorskip("anndata")
    pd = pytest.importorskip("pandas")
    obs = pd.DataFrame({"batch": pd.Categorical(np.array(["a", "b", "c"])[codes[:, 0]])},
                       index=[f"cell{i}" for i in range(N)])
    adata = ad.AnnData(sp.csr_matrix(counts), obs=obs)

    def fitted(sparse):
        m = vaefast.VAE.from_anndata(adata, batch_key="batch", hidden=(32,), latent_dim=5,
                                     likelihood="zinb", seed=4)
        h = m.fit(adata, epochs=1, batch_size=64, progress=False, sparse_first_layer=sparse)
        return m, h

    want, h_want = fitted(False)
    csr_calls.clear()
    got, h_got = fitted(True)
    assert csr_calls == [slice(0, N)]  # the core gathers its 5 batches of 64
    assert_fits_close(got, want, 5, True)
    np.testing.assert_allclose(h_got.history["loss"], h_want.history["loss"], rtol=1e-6)
    csr_calls.clear()
    z = got.get_latent_representation(adata)
    assert len(csr_calls) == 1  # one inference chunk, in CSR form
    monkeypatch.undo()
    close_to(z, got.transform(counts, codes=codes[:, :1]))
