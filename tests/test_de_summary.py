"""The Bayes-factor summary of differential expression against hand-computed
values on tiny posteriors (vaefast.single_cell.summarise and
estimate_pseudocount), and its wiring in differential_expression.

The draws are powers of two, so every log2 fold change is exact in float32
and the counts of draws beyond delta can be done by hand.
"""

import numpy as np
import pytest

import vaefast
from vaefast.single_cell import (_posterior_expression, differential_expression,
                                 estimate_pseudocount, summarise)

# 4 paired draws x 4 genes; log2(h1 / h2) per draw:
#   gene 0: 2, 2, 2, 0     gene 1: 2, -2, 2, -2
#   gene 2: 0.5 throughout  gene 3: 2^-30 against 2^-27 (an unexpressed gene: -3)
H2 = np.full((4, 4), 2.0 ** -4, np.float32)
H1 = H2.copy()
H1[:, 0] = [2.0 ** -2, 2.0 ** -2, 2.0 ** -2, 2.0 ** -4]
H1[:, 1] = [2.0 ** -2, 2.0 ** -6, 2.0 ** -2, 2.0 ** -6]
H1[:, 2] = 2.0 ** -3.5
H1[:, 3], H2[:, 3] = 2.0 ** -30, 2.0 ** -27


def test_change_mode_by_hand():
    out = summarise(H1, H2, delta=1.0, pseudocount=1e-12)
    # P(r >= 1), P(r < -1) per gene: (3/4, 0), (1/2, 1/2), (0, 0), (0, 1)
    np.testing.assert_allclose(out["proba_de"], [0.75, 0.5, 0.0, 1.0])
    np.testing.assert_allclose(out["proba_not_de"], [0.25, 0.5, 1.0, 0.0])
    two = summarise(H1, H2, delta=1.0, pseudocount=1e-12, test_mode="two")
    np.testing.assert_allclose(two["proba_de"], [0.75, 1.0, 0.0, 1.0])
    # lfc with pseudocount / 1000: the exact log2 ratios (within float32)
    np.testing.assert_allclose(out["lfc_mean"], [1.5, 0.0, 0.5, -3.0], atol=1e-5)
    np.testing.assert_allclose(out["lfc_median"], [2.0, 0.0, 0.5, -3.0], atol=1e-5)
    np.testing.assert_allclose(out["lfc_std"], [np.sqrt(0.75), 2.0, 0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(out["scale1"], H1.mean(axis=0))
    p = out["proba_de"]
    np.testing.assert_allclose(out["bayes_factor"], np.log(p + 1e-8) - np.log(1 - p + 1e-8))
    # ranked by proba_de, ties (none here) by |lfc_mean|
    assert list(out["rank"]) == [3, 0, 1, 2]


def test_pseudocount_shrinks_an_unexpressed_gene():
    # pc = 2^-20 dwarfs gene 3's 2^-27: r = log2((2^-30 + pc) / (2^-27 + pc)) ~ -0.006
    out = summarise(H1, H2, delta=1.0, pseudocount=2.0 ** -20)
    assert out["proba_de"][3] == 0.0
    np.testing.assert_allclose(out["proba_de"][:3], [0.75, 0.5, 0.0])
    # the reported lfc uses pc / 1000 (float64 here; float32 there: rtol 1e-5)
    small = 2.0 ** -20 / 1000
    np.testing.assert_allclose(out["lfc_mean"][3],
                               np.log2((2.0 ** -30 + small) / (2.0 ** -27 + small)), rtol=1e-5)


def test_vanilla_mode_by_hand():
    out = summarise(H1, H2, delta=1.0, pseudocount=1e-12, mode="vanilla")
    # h1 > h2 in 3, 2, 4, 0 of the 4 pairs (gene 0's last pair is a tie)
    np.testing.assert_allclose(out["proba_m1"], [0.75, 0.5, 1.0, 0.0])
    np.testing.assert_allclose(out["proba_m2"], [0.25, 0.5, 0.0, 1.0])
    m1 = out["proba_m1"]
    np.testing.assert_allclose(out["bayes_factor"], np.log(m1 + 1e-8) - np.log(1 - m1 + 1e-8))
    assert list(out["rank"][:2]) == [3, 2]  # |bayes_factor| ~ 18.4 both; |lfc| 3 > 0.5


def test_pseudocount_estimate_by_hand():
    genes = 11
    h1 = np.zeros((3, genes), np.float32)
    h1[1] = np.arange(genes)  # per-gene maxima 0, 1, ..., 10
    h2 = np.zeros((3, genes), np.float32)
    h2[2, :] = 0.5
    every = np.ones(genes, bool)
    # the 0.9 quantile of 0..10 (linear) is 9; group 2's is 0.5; max / 11 genes
    assert estimate_pseudocount(h1, h2, every, every) == pytest.approx(9.0 / genes)
    only_low = np.arange(genes) < 2  # maxima 0 and 1: quantile 0.9
    assert estimate_pseudocount(h1, h2, only_low, ~every) == pytest.approx(0.9 / genes)
    # no unexpressed gene in either group: the floor 1e-10
    assert estimate_pseudocount(h1, h2, ~every, ~every) == 1e-10
    assert estimate_pseudocount(h1, h2, ~every, every) == pytest.approx(0.5 / genes)


@pytest.fixture(scope="module")
def small_model():
    rng = np.random.default_rng(3)
    X = rng.poisson(5.0, (200, 12)).astype(np.float32)
    X[:, 5] = 0  # a gene no cell expresses (below threshold_counts in both groups)
    groups = np.arange(200) % 2
    m = vaefast.VAE(12, hidden=(8,), latent_dim=2, likelihood="scvi_nb", seed=1)
    m.fit(X, epochs=3, batch_size=50, progress=False)
    return m, X, groups


def test_estimated_pseudocount_is_used(small_model):
    m, X, groups = small_model
    rng = np.random.default_rng(7)  # the same stream differential_expression draws from
    h1 = _posterior_expression(m, X, None, None, np.flatnonzero(groups == 0), 300, rng)
    h2 = _posterior_expression(m, X, None, None, np.flatnonzero(groups == 1), 300, rng)
    unexpressed = np.arange(12) == 5
    pc = estimate_pseudocount(h1, h2, unexpressed, unexpressed)
    assert pc > 1e-10
    got = differential_expression(m, X, groups, 0, 1, n_draws=300, seed=7)
    want = differential_expression(m, X, groups, 0, 1, n_draws=300, seed=7, pseudocount=pc)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])
    # threshold 0: no gene unexpressed, the floor 1e-10
    got = differential_expression(m, X, groups, 0, 1, n_draws=300, seed=7, threshold_counts=0)
    want = differential_expression(m, X, groups, 0, 1, n_draws=300, seed=7, pseudocount=1e-10)
    np.testing.assert_array_equal(got["proba_de"], want["proba_de"])


def test_bad_test_mode_and_threshold(small_model):
    m, X, groups = small_model
    with pytest.raises(ValueError, match="test_mode"):
        differential_expression(m, X, groups, 0, test_mode="one")
    with pytest.raises(ValueError, match="threshold_counts"):
        differential_expression(m, X, groups, 0, threshold_counts=-1.0)
