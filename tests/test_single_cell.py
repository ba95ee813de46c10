"""vaefast.single_cell.differential_expression: planted genes found, errors named."""

import numpy as np
import pytest

import vaefast
from vaefast.single_cell import differential_expression

GENES, PLANTED = 60, 6


@pytest.fixture(scope="module")
def planted():
    """Two cell types that differ only in PLANTED genes (log fold ±3 nats in
    total), NB counts, no empty cell; a model trained on them."""
    rng = np.random.default_rng(11)
    n = 800
    cell_type = rng.integers(0, 2, n)
    base = rng.normal(0.0, 1.0, GENES)
    rho = np.tile(base, (n, 1))
    genes = rng.choice(GENES, PLANTED, replace=False)
    sign = np.where(np.arange(PLANTED) % 2 == 0, 1.0, -1.0)
    rho[:, genes] += np.where(cell_type == 0, 1.5, -1.5)[:, None] * sign
    p = np.exp(rho) / np.exp(rho).sum(axis=1, keepdims=True)
    mean = 200.0 * p
    X = rng.poisson(rng.gamma(5.0, mean / 5.0)).astype(np.float32)
    X[:, 0] += 1  # no empty cell
    m = vaefast.VAE(GENES, hidden=(32,), latent_dim=4, likelihood="scvi_nb", seed=2)
    m.fit(X, epochs=60, batch_size=64, learning_rate=3e-3, progress=False)
    truth = np.zeros(GENES, bool)
    truth[genes] = True
    return m, X, cell_type, truth, sign, genes


def test_planted_genes_rank_first(planted):
    m, X, cell_type, truth, sign, genes = planted
    de = differential_expression(m, X, cell_type, 0, 1, n_draws=1000)
    # the oracle is the generating model: its changed genes, and their signs
    assert set(de["rank"][:PLANTED]) == set(np.flatnonzero(truth))
    assert (np.sign(de["lfc_mean"][genes]) == sign).all()
    assert de["proba_de"][truth].min() > de["proba_de"][~truth].max()
    # the true log2 fold change is ±3 nats = ±4.33; the model's must be near
    np.testing.assert_allclose(np.abs(de["lfc_median"][genes]), 3 / np.log(2), rtol=0.35)
    for key in ("proba_de", "lfc_mean", "lfc_median", "scale1", "scale2", "rank"):
        assert de[key].shape == (GENES,)
    assert np.all((de["proba_de"] >= 0) & (de["proba_de"] <= 1))


def test_rest_of_cells_and_seeding(planted):
    m, X, cell_type, *_ = planted
    a = differential_expression(m, X, cell_type, 0, n_draws=200, seed=4)
    b = differential_expression(m, X, cell_type, 0, group2=1, n_draws=200, seed=4)
    for key in a:  # with two types, "every other cell" is type 1
        np.testing.assert_array_equal(a[key], b[key])
    c = differential_expression(m, X, cell_type, 0, n_draws=200, seed=5)
    assert not np.array_equal(a["lfc_mean"], c["lfc_mean"])


def test_delta_bounds_the_probability(planted):
    m, X, cell_type, *_ = planted
    # delta 0: the two tails P(r >= 0) + P(r < 0) hold every draw; the larger >= 1/2
    two = differential_expression(m, X, cell_type, 0, 1, n_draws=50, delta=0, test_mode="two")
    assert (two["proba_de"] == 1).all()
    three = differential_expression(m, X, cell_type, 0, 1, n_draws=50, delta=0)
    assert (three["proba_de"] >= 0.5).all()
    assert (differential_expression(m, X, cell_type, 0, 1, n_draws=50, delta=1e6)["proba_de"]
            == 0).all()


def test_sparse_cells_give_the_same_result(planted):
    sp = pytest.importorskip("scipy.sparse", reason="scipy is not installed")
    m, X, cell_type, *_ = planted
    a = differential_expression(m, X, cell_type, 0, 1, n_draws=100)
    b = differential_expression(m, sp.csr_matrix(X), cell_type, 0, 1, n_draws=100)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_normalized_expression_of_sparse_cells(planted):
    sp = pytest.importorskip("scipy.sparse", reason="scipy is not installed")
    m, X, *_ = planted
    want = m.get_normalized_expression(X, library_size=1e4)
    np.testing.assert_array_equal(m.get_normalized_expression(sp.csr_matrix(X),
                                                              library_size=1e4), want)
    np.testing.assert_allclose(want.sum(axis=1), 1e4, rtol=1e-5)


def test_errors_name_the_argument(planted):
    m, X, cell_type, *_ = planted
    with pytest.raises(ValueError, match="model must use a likelihood with scVI's mean"):
        differential_expression(vaefast.VAE(GENES, hidden=(4,), latent_dim=2,
                                            likelihood="poisson"), X, cell_type, 0)
    with pytest.raises(ValueError, match="groups must hold one label per row"):
        differential_expression(m, X, cell_type[:-1], 0)
    with pytest.raises(ValueError, match="group1=7 names no cell"):
        differential_expression(m, X, cell_type, 7)
    with pytest.raises(ValueError, match="group2='x' names no cell"):
        differential_expression(m, X, cell_type, 0, "x")
    with pytest.raises(ValueError, match="holds every cell"):
        differential_expression(m, X, np.zeros(len(X), int), 0)
    with pytest.raises(ValueError, match="n_draws must be a positive integer"):
        differential_expression(m, X, cell_type, 0, n_draws=0)
    with pytest.raises(ValueError, match="delta"):
        differential_expression(m, X, cell_type, 0, delta=-1.0)
    with pytest.raises(ValueError, match="pseudocount"):
        differential_expression(m, X, cell_type, 0, pseudocount=0.0)
