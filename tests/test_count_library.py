"""The scVI likelihoods' observed library inside the core (row_total in
csrc/vae_likelihood.c): each row's total count, summed in 16 float lanes
while they are exact (non-negative integers, every lane below 2^24) and in
float64 otherwise, then rounded to float32 once.

Oracles: (1) the same ELBO with the library given as size factors, the
float64 row sum rounded to float32: equal bit for bit when the core's sum
is exact. D = 100 covers six full 16-lane blocks and a tail of 4; row 1
pushes lane 0 past 2^24, where float lanes would lose a count (its total
16,777,218 would come out as 16,777,216) and the float64 fallback must
not; row 2 totals 3.2e7 over lanes that each stay below 2^24. (2) The
float64 NumPy twin of the whole model (vaefast.reference) on the rows of
ordinary counts, at rtol 2e-5 as tests/test_scvi_model.py compares it; not
on rows 1 and 2, whose float32 loss terms (x·log μ ~ 3e8) cancel to ~1e3,
so float32 rounding alone moves them by ~30.
"""

import numpy as np
import pytest

import vaefast
import vaefast.reference as R

D, H, Z = 100, 9, 3


def twin_params(m):
    """The model's weights as the twin's float64 params."""
    w = {k: v.astype(np.float64) for k, v in m.get_weights().items()}
    out_w, out_b = w["output.weight"], w["output.bias"]
    if "output_pi.weight" in w:
        out_w = np.concatenate([out_w, w["output_pi.weight"]], axis=1)
        out_b = np.concatenate([out_b, w["output_pi.bias"]])
    return {"encoder": [(w["encoder.0.weight"], w["encoder.0.bias"])],
            "head": (np.concatenate([w["mu.weight"], w["logvar.weight"]], axis=1),
                     np.concatenate([w["mu.bias"], w["logvar.bias"]])),
            "decoder": [(w["decoder.0.weight"], w["decoder.0.bias"])],
            "output": (out_w, out_b),
            "likelihood": w["likelihood.log_theta"]}


def counts(rng):
    X = rng.negative_binomial(2.0, 0.3, size=(6, D)).astype(np.float32)
    X[rng.random(X.shape) < 0.8] = 0
    X[:, 0] += 1
    X[1] = 0
    X[1, [0, 16, 32, 1]] = [16777215, 1, 1, 1]  # lane 0 passes 2^24: float64
    X[2, :16] = 2_000_000                        # total 3.2e7, every lane 2e6
    X[3, 96:] = [7, 0, 3, 250]                   # counts in the tail only
    return X


@pytest.mark.parametrize("lik", ["zinb", "scvi_nb"])
def test_observed_library_matches_the_twin(lik, on_each_kernel_set):
    rng = np.random.default_rng(8)
    X = counts(rng)
    eps = rng.standard_normal((X.shape[0], Z)).astype(np.float32)
    m = vaefast.VAE(D, hidden=(H,), latent_dim=Z, likelihood=lik, seed=2)
    params = twin_params(m)
    cache = R.forward(params, X.astype(np.float64), eps.astype(np.float64), lik)
    nelbo, _, _ = R.per_sample_loss(cache, X.astype(np.float64), lik, 1.0, params)
    library = X.sum(axis=1, dtype=np.float64).astype(np.float32)
    assert library[1] == 16777218.0
    ordinary = [0, 3, 4, 5]
    for isa, (got, given) in on_each_kernel_set(
            lambda: (m.elbo(X, eps=eps), m.elbo(X, eps=eps, size_factors=library))).items():
        np.testing.assert_array_equal(got, given, err_msg=isa)
        np.testing.assert_allclose(got[ordinary], -nelbo[ordinary], rtol=2e-5, err_msg=isa)
