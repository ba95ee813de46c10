"""The Python VAE with categorical covariates (``categorical_covariates=``,
``codes=``; vaefast/model.py, vaefast/_covariate_codes.py) against the
float64 twin of scVI's architecture (vaefast.reference.covariate_model),
against the same model with the covariates as one-hot conditions, across
thread counts, through save/load/pickle/copy, and every argument error
(export: tests/test_covariate_vae_torch.py, tests/test_covariate_vae_onnx.py).

Tolerances are tests/test_covariate_core.py's (float32 model, same loss):
the loss to 2e-5 relative, the gradients to 1e-3 relative plus 1e-4 of the
largest entry of their block.
"""

import copy
import pickle

import numpy as np
import pytest

import vaefast
from vaefast.reference.covariate_model import (CovariateModel, loss_and_grad,
                                               rounded_to_float32, vae_weights)

D, Z, HID = 9, 3, (8, 6)
LEVELS = (3, 2, 4)
PLACES = [dict(deep=True, encode=False), dict(deep=False, encode=False),
          dict(deep=True, encode=True), dict(deep=False, encode=True)]


def vae(place, n_cont=0, beta=0.8, **kw):
    return vaefast.VAE(D, hidden=HID, latent_dim=Z, likelihood="zinb", beta=beta,
                       n_conditions=n_cont, categorical_covariates=LEVELS,
                       deeply_inject_covariates=place["deep"],
                       encode_covariates=place["encode"], **kw)


def data(rng, B=16, n_cont=0):
    x = rng.poisson(1.2, (B, D)).astype(np.float32)
    x[rng.random(x.shape) < 0.5] = 0
    x[:, 0] += 1  # every row has a count (scVI's library)
    codes = np.stack([rng.integers(0, n, B) for n in LEVELS], axis=1)
    cont = rng.standard_normal((B, n_cont)).astype(np.float32) if n_cont else None
    eps = rng.standard_normal((B, Z)).astype(np.float32)
    return x, codes, cont, eps


@pytest.mark.parametrize("place", PLACES, ids=lambda p: f"deep{p['deep']:d}-enc{p['encode']:d}")
def test_loss_and_gradients_match_the_twin(rng, place, kernel_set):
    n_cont = 2 if place["encode"] else 0  # the model joins c to the encoder's input too
    spec = CovariateModel(D, HID, Z, LEVELS, n_continuous=n_cont, likelihood="zinb",
                          **place)
    params = rounded_to_float32(spec.init(rng))
    m = vae(place, n_cont)
    m.set_weights(vae_weights(spec, params))
    x, codes, cont, eps = data(rng, n_cont=n_cont)
    loss, grads = m.loss_and_grad(x, eps, c=cont, codes=codes)
    want, per_row, want_g = loss_and_grad(spec, params, x.astype(np.float64), codes,
                                          None if cont is None else cont.astype(np.float64),
                                          None, eps.astype(np.float64), beta=0.8)
    np.testing.assert_allclose(loss, want, rtol=2e-5)
    # the per-row ELBO with the same noise, through elbo()
    np.testing.assert_allclose(-m.elbo(x, c=cont, eps=eps, codes=codes), per_row, rtol=2e-5)
    want_named = vae_weights(spec, want_g)
    assert set(grads) == set(want_named)
    assert any(k.endswith(".covariates") for k in grads)
    for k, w in want_named.items():
        atol = 1e-4 * max(float(np.abs(w).max()), 1e-12)
        np.testing.assert_allclose(grads[k], w, rtol=1e-3, atol=atol, err_msg=k)


def test_the_codes_change_what_the_injected_sides_compute(rng):
    """The decoder always reads the codes, the encoder only with encode_covariates."""
    x, codes, _, _ = data(rng, B=40)
    other = codes.copy()
    other[:, 0] = (other[:, 0] + 1) % LEVELS[0]
    for place in PLACES:
        m = vae(place)
        mu = m.transform(x, codes=codes)
        assert np.array_equal(mu, m.transform(x, codes=other)) != place["encode"]
        assert not np.allclose(m.decode(mu, codes=codes), m.decode(mu, codes=other))
    # chunked inference (> 4096 rows) equals row-wise blocks
    m = vae(PLACES[2])
    big_x, big_codes, _, _ = data(np.random.default_rng(1), B=4500)
    whole = m.transform(big_x, codes=big_codes)
    np.testing.assert_array_equal(whole[4400:], m.transform(big_x[4400:],
                                                            codes=big_codes[4400:]))
    ll = m.log_likelihood(big_x[:30], n_samples=4, seed=0, codes=big_codes[:30])
    assert ll.shape == (30,) and np.isfinite(ll).all()


def onehot(codes):
    return np.concatenate([np.eye(n, dtype=np.float32)[codes[:, k]]
                           for k, n in enumerate(LEVELS)], axis=1)


def test_first_layer_injection_equals_the_one_hot_conditional_model(rng):
    """deep=False, encode=True puts the tables in the first layer of each side,
    which is exactly a conditional VAE whose c is the one-hot of the codes
    (its first layers' last rows are the tables): same loss to float32
    rounding, and fitting either gives the same weights to a few ulps of
    accumulated rounding."""
    place = dict(deep=False, encode=True)
    cov = vae(place, beta=1.0, seed=4)
    plain = vaefast.VAE(D, hidden=HID, latent_dim=Z, likelihood="zinb", seed=4,
                        n_conditions=sum(LEVELS))

    def as_onehot_weights(w):
        w = dict(w)
        for first in ("encoder.0", "decoder.0"):
            w[f"{first}.weight"] = np.vstack([w[f"{first}.weight"],
                                              w.pop(f"{first}.covariates")])
        return w

    plain.set_weights(as_onehot_weights(cov.get_weights()))
    x, codes, _, eps = data(rng, B=200)
    c = onehot(codes)
    l1, g1 = cov.loss_and_grad(x, eps, codes=codes)
    l2, g2 = plain.loss_and_grad(x, eps, c=c)
    np.testing.assert_allclose(l1, l2, rtol=1e-6)
    g1 = as_onehot_weights(g1)
    for k in g2:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-4,
                                   atol=1e-5 * np.abs(g2[k]).max(), err_msg=k)
    h1 = cov.fit(x, epochs=3, batch_size=32, codes=codes, progress=False)
    h2 = plain.fit(x, epochs=3, batch_size=32, c=c, progress=False)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-5)
    w1, w2 = as_onehot_weights(cov.get_weights()), plain.get_weights()
    for k in w2:
        np.testing.assert_allclose(w1[k], w2[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_fit_is_bit_identical_for_any_thread_count(rng, threads_setting):
    x, codes, cont, _ = data(rng, B=500, n_cont=2)
    results = []
    for n in (1, 2, 3):
        vaefast.set_num_threads(n)
        m = vae(PLACES[2], n_cont=2, seed=7)
        m.fit(x, epochs=2, batch_size=64, c=cont, codes=codes, progress=False,
              validation_data=(x[:50], cont[:50], None, codes[:50]))
        results.append((m.get_weights(), m.transform(x, cont, codes=codes)))
    fresh = vae(PLACES[2], n_cont=2, seed=7).get_weights()
    assert not np.array_equal(results[0][0]["decoder.0.covariates"],
                              fresh["decoder.0.covariates"])  # the tables were trained
    for w, mu in results[1:]:
        for k in w:
            np.testing.assert_array_equal(w[k], results[0][0][k], err_msg=k)
        np.testing.assert_array_equal(mu, results[0][1])


def test_save_load_pickle_copy_keep_the_covariates(rng, tmp_path):
    x, codes, _, _ = data(rng, B=64)
    m = vae(PLACES[3], seed=2)
    m.fit(x, epochs=1, batch_size=16, codes=codes, progress=False)
    want = m.transform(x, codes=codes)
    copies = [pickle.loads(pickle.dumps(m)), copy.copy(m), copy.deepcopy(m)]
    for fmt in ("npz", "safetensors"):
        path = tmp_path / f"m.{fmt}"
        m.save(path, format=fmt)
        copies.append(vaefast.VAE.load(path))
    for back in copies:
        assert back.categorical_covariates == LEVELS
        assert (back.deeply_inject_covariates, back.encode_covariates) == (False, True)
        assert back.get_config() == m.get_config()
        for k, w in m.get_weights().items():
            np.testing.assert_array_equal(back.get_weights()[k], w, err_msg=k)
        np.testing.assert_array_equal(back.transform(x, codes=codes), want)
    # a file of a model without covariates (no such config keys) loads as one
    plain = vaefast.VAE(D, hidden=(4,), latent_dim=2)
    plain.save(tmp_path / "plain.npz")
    assert "categorical_covariates" not in plain.get_config()
    back = vaefast.VAE.load(tmp_path / "plain.npz")
    assert back.categorical_covariates == () and back.num_params() == plain.num_params()


def test_errors_name_the_argument(rng):
    x, codes, _, eps = data(rng)
    m = vae(PLACES[0])
    with pytest.raises(ValueError, match="codes is required"):
        m.transform(x)
    with pytest.raises(ValueError, match="codes is required"):
        m.fit(x, epochs=1, progress=False)
    bad = codes.copy()
    bad[3, 2] = 4  # levels[2] == 4
    with pytest.raises(ValueError, match=r"codes\[:, 2\] must lie in \[0, 4\), got 4"):
        m.elbo(x, eps=eps, codes=bad)
    bad[3, 2] = -1
    with pytest.raises(ValueError, match=r"codes\[:, 2\]"):
        m.fit(x, epochs=1, codes=bad, progress=False)
    with pytest.raises(ValueError, match=r"codes must have shape \(16, 3\)"):
        m.decode(eps, codes=codes[:, :2])
    with pytest.raises(ValueError, match=r"codes must have shape \(16, 3\)"):
        m.loss_and_grad(x, eps, codes=codes[:5])
    nan = codes.astype(np.float64)
    nan[0, 0] = np.nan
    with pytest.raises(TypeError, match="codes must hold integer codes"):
        m.encode(x, codes=nan)
    with pytest.raises(TypeError, match="codes must hold integer codes"):
        m.sample(16, seed=0, codes=codes.astype(str))
    with pytest.raises(TypeError, match="codes must hold integer codes"):
        m.reconstruct(x, codes=codes.astype(bool))
    with pytest.raises(ValueError, match="codes was given but this VAE has no categorical"):
        vaefast.VAE(D, hidden=(4,), latent_dim=2).transform(x, codes=codes)
    with pytest.raises(ValueError, match="codes is required"):
        m.fit(x, epochs=1, codes=codes, validation_data=(x, None), progress=False)
    with pytest.raises(ValueError, match="codes= need X in memory"):
        m.fit([x], epochs=1, codes=codes, progress=False)
    with pytest.raises(ValueError, match=r"categorical_covariates\[1\]"):
        vaefast.VAE(D, categorical_covariates=[3, 0])
    with pytest.raises(TypeError, match="categorical_covariates"):
        vaefast.VAE(D, categorical_covariates=["a"])
    with pytest.raises(TypeError, match="deeply_inject_covariates must be a bool"):
        vaefast.VAE(D, categorical_covariates=[2], deeply_inject_covariates="yes")
    with pytest.raises(TypeError, match="encode_covariates must be a bool"):
        vaefast.VAE(D, categorical_covariates=[2], encode_covariates=1)
