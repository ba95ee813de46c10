"""VAE.from_anndata with categorical covariates as codes (scVI's way;
vaefast/_anndata_setup.py, vaefast/_scvi_api.py): the codes a model reads
from obs are the ones built by hand from the category values, whatever
order a later AnnData lists its categories in; fitting from the AnnData is
the fit on the dense array with those codes; transform_batch sets the batch
code; a saved model of the older one-hot form still loads and runs."""

import numpy as np
import pytest

import vaefast

ad = pytest.importorskip("anndata", reason="the AnnData route needs the anndata extra")
pd = pytest.importorskip("pandas", reason="anndata's obs is a pandas DataFrame")
sparse = pytest.importorskip("scipy.sparse", reason="counts are held as scipy CSR")

N, GENES = 120, 12
BATCHES, DONORS = ("a", "b", "c"), ("d1", "d2")


def _adata(rng, batch_order=BATCHES, donor_order=DONORS, cells=None):
    """Counts and obs; the same rng seed gives the same cells whatever the
    listed category order."""
    batch = rng.choice(BATCHES, N)
    donor = rng.choice(DONORS, N)
    age = rng.normal(0.0, 1.0, N)
    X = rng.poisson(2.0, (N, GENES)).astype(np.float32)
    X[:, 0] += 1
    cells = np.arange(N) if cells is None else cells
    obs = pd.DataFrame({"batch": pd.Categorical(batch[cells], categories=list(batch_order)),
                        "donor": pd.Categorical(donor[cells], categories=list(donor_order)),
                        "age": age[cells]}, index=[f"cell{i}" for i in cells])
    return ad.AnnData(sparse.csr_matrix(X[cells]), obs=obs), X[cells]


def _by_hand(adata):
    """(c, codes): the continuous key; the batch and donor as indices into
    the categories the model stored (BATCHES, DONORS), built independently."""
    obs = adata.obs
    codes = np.array([[BATCHES.index(b), DONORS.index(d)]
                      for b, d in zip(obs["batch"].astype(str), obs["donor"].astype(str))])
    return obs[["age"]].to_numpy(np.float32), codes


def _model(adata, **kw):
    return vaefast.VAE.from_anndata(adata, batch_key="batch", categorical_covariate_keys="donor",
                                    continuous_covariate_keys="age", likelihood="zinb",
                                    hidden=(8,), latent_dim=3, seed=5, **kw)


def test_from_anndata_builds_codes_and_fits_as_the_dense_fit(rng):
    adata, X = _adata(np.random.default_rng(0))
    m = _model(adata, encode_covariates=True)
    assert m.categorical_covariates == (3, 2) and m.n_conditions == 1
    assert m.encode_covariates and m.deeply_inject_covariates
    c, codes = _by_hand(adata)
    dense = _model(adata, encode_covariates=True)
    m.fit(adata, epochs=2, batch_size=32, progress=False)
    dense.fit(X, epochs=2, batch_size=32, c=c, codes=codes, progress=False)
    for k, w in dense.get_weights().items():  # same batches, dense layers: bit for bit
        np.testing.assert_array_equal(m.get_weights()[k], w, err_msg=k)
    np.testing.assert_array_equal(m.transform(adata), m.transform(X, c, codes=codes))
    np.testing.assert_array_equal(m.get_latent_representation(adata),
                                  m.transform(X, c, codes=codes))


def test_a_later_adata_with_reordered_categories_maps_by_value(rng):
    adata, X = _adata(np.random.default_rng(0))
    m = _model(adata, encode_covariates=True)
    m.fit(adata, epochs=1, batch_size=32, progress=False)
    cells = np.random.default_rng(3).permutation(N)[:70]
    later, X_later = _adata(np.random.default_rng(0), batch_order=("c", "a", "b"),
                            donor_order=("d2", "d1"), cells=cells)
    c, codes = _by_hand(later)
    got = m.transform(later)
    np.testing.assert_array_equal(got, m.transform(X_later, c, codes=codes))
    np.testing.assert_array_equal(got, m.transform(adata)[cells])
    np.testing.assert_array_equal(m.elbo(later, seed=1), m.elbo(X_later, seed=1, c=c,
                                                                  codes=codes))


def test_transform_batch_sets_the_batch_code(rng):
    adata, X = _adata(np.random.default_rng(0))
    m = _model(adata)
    m.fit(adata, epochs=1, batch_size=32, progress=False)
    c, codes = _by_hand(adata)
    z = m.transform(X, c, codes=codes)
    as_c = codes.copy()
    as_c[:, 0] = BATCHES.index("c")
    want = m.decode(z, c, codes=as_c)  # scVI mean, size factor 1: softmax(rho)
    got = m.get_normalized_expression(adata, transform_batch="c")
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert not np.allclose(got, m.get_normalized_expression(adata, transform_batch="a"))


def test_saved_setups_round_trip_and_the_old_one_hot_form_loads(rng, tmp_path):
    adata, X = _adata(np.random.default_rng(0))
    m = _model(adata)
    m.save(tmp_path / "codes.npz")
    back = vaefast.VAE.load(tmp_path / "codes.npz")
    assert back.anndata_setup_ == m.anndata_setup_ and back.categorical_covariates == (3, 2)
    np.testing.assert_array_equal(back.transform(adata), m.transform(adata))
    # a model saved before codes: the categories one-hot in c, no "codes" in its setup
    old = vaefast.VAE(GENES, hidden=(8,), latent_dim=3, likelihood="zinb", n_conditions=6)
    old.anndata_setup_ = {k: v for k, v in m.anndata_setup_.items() if k != "codes"}
    old.save(tmp_path / "old.npz")
    loaded = vaefast.VAE.load(tmp_path / "old.npz")
    assert loaded.categorical_covariates == ()
    c, codes = _by_hand(adata)
    onehot = np.hstack([np.eye(3, dtype=np.float32)[codes[:, 0]],
                        np.eye(2, dtype=np.float32)[codes[:, 1]], c])
    np.testing.assert_array_equal(loaded.transform(adata), old.transform(X, onehot))
    got = loaded.get_normalized_expression(adata, transform_batch="b")
    onehot[:, :3] = [0.0, 1.0, 0.0]
    want = old.decode(old.transform(X, np.hstack([np.eye(3, dtype=np.float32)[codes[:, 0]],
                                                  onehot[:, 3:]])), onehot)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    # a codes-form setup on a model without those covariates is refused
    bad = vaefast.VAE(GENES, hidden=(8,), latent_dim=3, likelihood="zinb", n_conditions=1)
    bad.anndata_setup_ = m.anndata_setup_
    bad.save(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="corrupt.*categorical covariates"):
        vaefast.VAE.load(tmp_path / "bad.npz")


def test_from_anndata_errors(rng):
    adata, _ = _adata(np.random.default_rng(0))
    with pytest.raises(ValueError, match="categorical_covariates comes from the AnnData"):
        _model(adata, categorical_covariates=[3])
    m = _model(adata)
    obs = adata.obs.copy()
    obs["donor"] = obs["donor"].cat.add_categories(["d9"])
    obs.iloc[4, obs.columns.get_loc("donor")] = "d9"
    with pytest.raises(ValueError, match="'donor'.*'d9'"):
        m.transform(ad.AnnData(adata.X, obs=obs))
    with pytest.raises(ValueError, match=r"codes\[:, 0\] must lie in \[0, 3\)"):
        m.transform(adata, codes=np.full((N, 2), 3))
