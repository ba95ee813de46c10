"""The C model with categorical covariates in its layers (csrc/vae_covariates.c,
VAECore(categorical=…)) against the float64 twin of the scVI architecture
(vaefast.reference.covariate_model), itself checked by central differences
and against scvi-tools' FCLayers.

The core is driven directly: VAE (the Python model) does not take codes yet.
Tolerances follow tests/test_scvi_model.py's (float32 model, same loss):
the loss to 2e-5 relative, the gradients to 1e-3 relative plus 1e-4 of the
largest entry of their block.
"""

import os
import sys

import numpy as np
import pytest

import vaefast
from vaefast import _core
from vaefast._spec.likelihoods import REGISTRY
from vaefast.reference.covariate_model import CovariateModel, loss_and_grad

sys.path.insert(0, os.path.dirname(__file__))  # tests/core_buffers.py (tests/ is no package)
from core_buffers import f32, grads_like, layers_of, to_flat  # noqa: E402

D, Z, HID = 9, 3, (8, 6)
LEVELS = (3, 2, 4)


def build(place, n_cont=0, beta=0.8, levels=LEVELS):
    spec = CovariateModel(D, HID, Z, levels, n_continuous=n_cont, likelihood="zinb", **place)
    core = _core.VAECore(D, list(HID), list(reversed(HID)), Z, REGISTRY["zinb"].code, beta,
                         n_conditions=n_cont, categorical=list(levels), **place)
    return spec, core


def data(rng, B=16, n_cont=0):
    x = rng.poisson(1.2, (B, D)).astype(np.float32)
    x[rng.random(x.shape) < 0.5] = 0
    x[:, 0] += 1
    codes = np.stack([rng.integers(0, n, B) for n in LEVELS], axis=1).astype(np.int32)
    cont = rng.standard_normal((B, n_cont)).astype(np.float32) if n_cont else None
    eps = rng.standard_normal((B, Z)).astype(np.float32)
    return x, codes, cont, eps


PLACES = [dict(deep=True, encode=False), dict(deep=False, encode=False),
          dict(deep=True, encode=True), dict(deep=False, encode=True)]


@pytest.mark.parametrize("place", PLACES, ids=lambda p: f"deep{p['deep']:d}-enc{p['encode']:d}")
def test_loss_and_gradients_match_the_twin(rng, place, kernel_set):
    n_cont = 2 if place["encode"] else 0  # the core joins c to the encoder's input too
    spec, core = build(place, n_cont)
    params = spec.init(rng)
    params = f32(params)
    flat = to_flat(core, params)
    core.set_buffer(_core.PARAMS, flat)
    x, codes, cont, eps = data(rng, n_cont=n_cont)
    loss, recon, kl = core.loss_and_grad(x, eps, 0, 0, 1.0, c=(cont, codes))
    want, per_row, want_g = loss_and_grad(spec, params, x.astype(np.float64), codes,
                                          None if cont is None else cont.astype(np.float64),
                                          None, eps.astype(np.float64), beta=0.8)
    np.testing.assert_allclose(loss, want, rtol=2e-5)
    np.testing.assert_allclose(recon + 0.8 * kl, per_row, rtol=2e-5)
    got, got_lt = grads_like(core, core.get_buffer(_core.GRADS), params)
    for l, (g, w) in enumerate(zip(got, layers_of(want_g))):
        assert set(g) == set(w), l
        for k in w:
            atol = 1e-4 * max(float(np.abs(w[k]).max()), 1e-12)
            np.testing.assert_allclose(g[k], w[k], rtol=1e-3, atol=atol, err_msg=f"{l}.{k}")
    np.testing.assert_allclose(got_lt, want_g["log_theta"], rtol=1e-3,
                               atol=1e-4 * np.abs(want_g["log_theta"]).max())


def test_encode_decode_and_elbo_read_the_codes(rng):
    spec, core = build(dict(deep=True, encode=True))
    params = spec.init(rng)
    flat = to_flat(core, params)
    core.set_buffer(_core.PARAMS, flat)
    x, codes, _, eps = data(rng, B=300)  # the ELBO's passes of 256 rows: two
    mu, lv = core.encode(x, c=(None, codes))
    other = codes.copy()
    other[:, 0] = (other[:, 0] + 1) % LEVELS[0]
    mu2, _ = core.encode(x, c=(None, other))
    assert not np.allclose(mu, mu2)  # the encoder reads the batch
    out = core.decode(mu, False, c=(None, codes))
    np.testing.assert_array_equal(core.decode(mu[:7], False, c=(None, codes[:7])), out[:7])
    elbo = core.elbo(x, eps, c=(None, codes))
    _, per_row, _ = loss_and_grad(spec, params, x.astype(np.float64), codes, None, None,
                                  eps.astype(np.float64), beta=0.8)
    np.testing.assert_allclose(-elbo, per_row, rtol=2e-5)


def test_fits_are_bit_identical_for_any_thread_count(rng, threads_setting):
    x, codes, _, _ = data(rng, B=500)
    order = rng.permutation(500).astype(np.int64)
    results = []
    for n in (1, 2, 3):
        vaefast.set_num_threads(n)
        spec, core = build(dict(deep=True, encode=True))
        core.set_buffer(_core.PARAMS, to_flat(core, spec.init(np.random.default_rng(3))))
        sums = np.zeros(3)
        done, status = core.train_steps(x, order, 64, 0, 8, 11, 0, 1e-2, 0.9, 0.999, 1e-8, 0.0,
                                        "adam", 1.0, sums, c=(None, codes))
        assert (done, status) == (8, 0)
        results.append(core.get_buffer(_core.PARAMS))
    assert not np.array_equal(results[0], to_flat(core, spec.init(np.random.default_rng(3))))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_errors(rng):
    spec, core = build(dict(deep=True, encode=False))
    x, codes, _, eps = data(rng)
    bad = codes.copy()
    bad[3, 2] = 4  # levels[2] == 4
    with pytest.raises(ValueError, match="loss_and_grad"):
        core.loss_and_grad(x, eps, 0, 0, 1.0, c=(None, bad))
    with pytest.raises(ValueError, match="encode"):
        core.encode(x)  # no codes for a model with covariates
    with pytest.raises(ValueError, match="encode"):
        core.encode(x, c=(None, np.ascontiguousarray(codes[:, :2])))  # too few columns
    with pytest.raises(ValueError, match="codes must have 16 rows"):
        core.encode(x, c=(None, codes[:5]))
    with pytest.raises(ValueError, match="vf_vae_create"):
        _core.VAECore(D, [4], [4], Z, REGISTRY["zinb"].code, 1.0, categorical=[3, 0])


def test_placement_matches_the_twins_rule():
    for place in PLACES:
        spec, core = build(place)
        enc = [bool(core.cov_table(l)[1]) for l in range(len(HID) + 1)]
        dec = [bool(core.cov_table(l)[1]) for l in range(len(HID) + 1, core.n_layers)]
        assert enc == spec.receives("encoder") and dec == spec.receives("decoder"), place
        assert all(core.cov_table(l)[1] in (0, sum(LEVELS)) for l in range(core.n_layers))
