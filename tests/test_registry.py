"""The likelihood registry (vaefast/_spec/likelihoods.py) against the model:
every record's NumPy hooks agree with what the C core computes."""

import numpy as np
import pytest

import vaefast
from vaefast._spec import likelihoods

D = 6


def make(lik, variance="unit"):
    return vaefast.VAE(D, hidden=(8,), latent_dim=3, likelihood=lik.name, seed=3,
                       variance=variance)


@pytest.mark.parametrize("lik", likelihoods.REGISTRY.values(), ids=likelihoods.NAMES)
def test_mean_hook_is_the_decoders_mean(lik):
    """decode (C, float32) == the record's mean of the raw output layer;
    float32 exp/sigmoid differ from NumPy's by a few ulp."""
    m = make(lik)
    Z = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    s = np.array([0.5, 1.0, 2.0, 3.0, 1.5], np.float32) if lik.counts else None
    raw = m._decode_raw(Z, False)
    np.testing.assert_allclose(m.decode(Z, size_factors=s), lik.mean(raw, D, s),
                               rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("lik", likelihoods.REGISTRY.values(), ids=likelihoods.NAMES)
def test_targets_are_checked_by_the_record(lik):
    m = make(lik)
    low, high = lik.targets
    bad = np.full((2, D), (low - 1.0) if np.isfinite(low) else np.nan, np.float32)
    if not np.isfinite(low):
        m.fit(np.ones((4, D), np.float32) * 5.0, epochs=1)  # any finite target
        return
    with pytest.raises(ValueError, match="^X must"):
        m.fit(bad, epochs=1)


def test_unknown_likelihood_is_named():
    with pytest.raises(ValueError, match="likelihood must be one of"):
        vaefast.VAE(D, likelihood="zipf")


def test_variance_needs_a_likelihood_that_has_it():
    with pytest.raises(ValueError, match="variance='feature' needs likelihood in"):
        vaefast.VAE(D, likelihood=likelihoods.POISSON.name, variance="feature")


@pytest.mark.parametrize("lik", likelihoods.REGISTRY.values(), ids=likelihoods.NAMES)
def test_extra_parameter_is_in_the_weights(lik):
    for variance in lik.variances:
        key = lik.extra_param_key(variance)
        names = make(lik, variance).get_weights()
        extra = [k for k in names if k.startswith("likelihood.")]
        assert extra == ([] if key is None else [key])
