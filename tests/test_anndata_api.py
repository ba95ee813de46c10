"""VAE.from_anndata and the scvi-tools-named methods (vaefast/_scvi_api.py,
vaefast/_anndata_setup.py): conditions built from obs, stored with the
model, transform_batch, posterior predictive counts, DE tables."""

import numpy as np
import pytest

import vaefast

ad = pytest.importorskip("anndata", reason="the AnnData API needs the anndata extra")
pd = pytest.importorskip("pandas", reason="anndata's obs is a pandas DataFrame")
sparse = pytest.importorskip("scipy.sparse", reason="counts are held as scipy CSR")

N, GENES, PLANTED = 600, 40, 4


def _obs(rng, n, batch_order=("a", "b", "c")):
    batch = rng.choice(["a", "b", "c"], n)
    return pd.DataFrame({
        "batch": pd.Categorical(batch, categories=list(batch_order)),
        "donor": rng.choice(["d1", "d2"], n),
        "age": rng.normal(0.0, 1.0, n),  # standardised: c is not scaled
    }, index=[f"cell{i}" for i in range(n)])


@pytest.fixture(scope="module")
def data():
    """Counts with a batch effect and two cell types differing in PLANTED
    genes (log fold ±3 nats in total, as tests/test_single_cell.py)."""
    rng = np.random.default_rng(5)
    obs = _obs(rng, N)
    cell_type = rng.integers(0, 2, N)
    base = rng.normal(0.0, 1.0, GENES)
    rho = np.tile(base, (N, 1))
    genes = rng.choice(GENES, PLANTED, replace=False)
    sign = np.where(np.arange(PLANTED) % 2 == 0, 1.0, -1.0)
    rho[:, genes] += np.where(cell_type == 0, 1.5, -1.5)[:, None] * sign
    rho += 0.3 * rng.normal(size=(3, GENES))[obs["batch"].cat.codes.to_numpy()]
    p = np.exp(rho) / np.exp(rho).sum(axis=1, keepdims=True)
    X = rng.poisson(rng.gamma(5.0, 200.0 * p / 5.0)).astype(np.float32)
    X[:, 0] += 1  # no empty cell
    obs["cell_type"] = np.where(cell_type == 0, "T", "B")
    adata = ad.AnnData(sparse.csr_matrix(X), obs=obs)
    adata.var_names = [f"g{j}" for j in range(GENES)]
    m = vaefast.VAE.from_anndata(adata, batch_key="batch", categorical_covariate_keys=["donor"],
                                 continuous_covariate_keys=["age"], likelihood="scvi_nb",
                                 hidden=(32,), latent_dim=4, seed=3)
    m.fit(adata, epochs=60, batch_size=64, learning_rate=3e-3, progress=False)
    return m, adata, X, genes, sign


def _by_hand(obs, batch_cats=("a", "b", "c")):
    """The conditions c (the continuous key) and the codes (batch, donor)
    from_anndata documents, built independently."""
    b = [batch_cats.index(v) for v in obs["batch"].astype(str)]
    d = [("d1", "d2").index(v) for v in obs["donor"]]
    return (obs["age"].to_numpy()[:, None].astype(np.float32),
            np.array([b, d], dtype=np.int32).T.copy())


def test_setup_shapes_and_conditions(data):
    m, adata, X, *_ = data
    assert m.n_features == GENES and m.n_conditions == 1
    assert m.categorical_covariates == (3, 2)
    c, codes = _by_hand(adata.obs)
    np.testing.assert_array_equal(m.transform(adata), m.transform(X, c, codes=codes))
    np.testing.assert_array_equal(m.get_latent_representation(adata),
                                  m.transform(X, c, codes=codes))


def test_category_order_does_not_matter(data):
    m, adata, X, *_ = data
    obs = adata.obs.copy()
    obs["batch"] = obs["batch"].cat.reorder_categories(["c", "a", "b"])
    obs["donor"] = pd.Categorical(obs["donor"], categories=["d2", "d1"])
    other = ad.AnnData(sparse.csr_matrix(X), obs=obs)
    np.testing.assert_array_equal(m.get_latent_representation(other),
                                  m.get_latent_representation(adata))
    np.testing.assert_array_equal(m.get_normalized_expression(other),
                                  m.get_normalized_expression(adata))
    # a view of some cells: their rows of the whole
    view = other[10:50]
    np.testing.assert_array_equal(m.transform(view), m.transform(adata)[10:50])


def test_save_load_keeps_the_setup(data, tmp_path):
    m, adata, *_ = data
    for fmt in ("npz", "safetensors"):
        path = tmp_path / f"m.{fmt}"
        m.save(path, format=fmt)
        back = vaefast.VAE.load(path)
        assert back.anndata_setup_ == m.anndata_setup_
        np.testing.assert_array_equal(back.transform(adata), m.transform(adata))
    plain = vaefast.VAE(GENES, hidden=(8,), latent_dim=2)
    plain.save(tmp_path / "plain.vae")
    assert vaefast.VAE.load(tmp_path / "plain.vae").anndata_setup_ is None


def test_errors_name_the_key(data):
    m, adata, X, *_ = data
    obs = adata.obs.copy()
    obs["batch"] = obs["batch"].cat.add_categories(["z"])
    obs.iloc[3, obs.columns.get_loc("batch")] = "z"
    with pytest.raises(ValueError, match="'batch'.*'z'"):
        m.transform(ad.AnnData(sparse.csr_matrix(X), obs=obs))
    with pytest.raises(KeyError, match="'donor'"):
        m.transform(ad.AnnData(sparse.csr_matrix(X), obs=adata.obs.drop(columns="donor")))
    obs = adata.obs.copy()
    obs["donor"] = obs["donor"].astype(object)
    obs.iloc[7, obs.columns.get_loc("donor")] = np.nan
    with pytest.raises(ValueError, match="'donor'.*missing"):
        m.transform(ad.AnnData(sparse.csr_matrix(X), obs=obs))
    obs = adata.obs.copy()
    obs.iloc[2, obs.columns.get_loc("age")] = np.nan
    with pytest.raises(ValueError, match="'age'"):
        m.fit(ad.AnnData(sparse.csr_matrix(X), obs=obs), epochs=1, progress=False)
    with pytest.raises(ValueError, match="'age'.*missing"):
        vaefast.VAE.from_anndata(ad.AnnData(X, obs=obs), continuous_covariate_keys=["age"])
    with pytest.raises(KeyError, match="'nope'"):
        vaefast.VAE.from_anndata(adata, batch_key="nope")
    with pytest.raises(KeyError, match="layer='counts'"):
        vaefast.VAE.from_anndata(adata, layer="counts")
    with pytest.raises(ValueError, match="transform_batch='q'"):
        m.get_normalized_expression(adata, transform_batch="q")
    with pytest.raises(TypeError, match="adata"):
        m.differential_expression(X, "cell_type", "T")
    with pytest.raises(KeyError, match="groupby='kind'"):
        m.differential_expression(adata, "kind", "T")


def test_stored_layer_is_read(data):
    m, adata, X, *_ = data
    layered = ad.AnnData(np.zeros_like(X), obs=adata.obs.copy(),
                         layers={"counts": sparse.csr_matrix(X), "twice": 2 * X})
    m2 = vaefast.VAE.from_anndata(layered, layer="counts", batch_key="batch",
                                  hidden=(8,), latent_dim=2, seed=1)
    codes = _by_hand(adata.obs)[1][:, :1]
    np.testing.assert_array_equal(m2.transform(layered), m2.transform(X, codes=codes))
    # an explicit layer= overrides the stored one
    np.testing.assert_array_equal(m2.transform(layered, layer="twice"),
                                  m2.transform(2 * X, codes=codes))


def test_transform_batch_equals_decoding_by_hand(data):
    m, adata, X, *_ = data
    c, codes = _by_hand(adata.obs)
    z = m.transform(X, c, codes=codes)  # the encoder reads each cell's own batch
    codes_b = codes.copy()
    codes_b[:, 0] = 1  # batch "b"
    expected = m.decode(z, c, codes=codes_b)  # scVI mean with size factor 1: softmax(rho)
    got = m.get_normalized_expression(adata, transform_batch="b")
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    assert not np.allclose(got, m.get_normalized_expression(adata, transform_batch="a"))
    # n_samples: the average over posterior draws, seeded, chunking-independent
    many = m.get_normalized_expression(adata, transform_batch="b", n_samples=8, seed=2)
    dense = m.get_normalized_expression(X, c, transform_batch="b", n_samples=8, seed=2,
                                        codes=codes)
    np.testing.assert_allclose(many, dense, rtol=1e-6)
    np.testing.assert_allclose(many.sum(axis=1), 1.0, rtol=1e-5)
    mu, logvar = m.encode(X, c, codes=codes)
    eps = np.random.default_rng(2).standard_normal((N, 8, 4)).astype(np.float32)
    by_hand = np.mean([m.decode(mu + np.exp(0.5 * logvar) * eps[:, k], c, codes=codes_b)
                       for k in range(8)], axis=0)
    np.testing.assert_allclose(many, by_hand, rtol=1e-5, atol=1e-9)


def test_posterior_predictive_mean(data):
    """The mean of S draws of a cell's counts estimates E[x] = E_z[L·softmax(rho(z))]
    (the NB's mean given z); the oracle averages the public decode over 20,000
    independent z draws. Each entry must lie within 5 standard errors of the
    draws' own spread (plus 2% of the mean for the oracle's Monte Carlo
    error): a chance below 1e-6 per entry for a correct sampler."""
    m, adata, X, *_ = data
    cells = np.arange(8)
    sub = adata[cells]
    S = 400
    draws = m.posterior_predictive_sample(sub, n_samples=S, seed=9)
    assert len(draws) == S and sparse.issparse(draws[0]) and draws[0].shape == (8, GENES)
    stack = np.stack([d.toarray() for d in draws])
    assert np.array_equal(stack, np.round(stack)) and stack.min() >= 0
    c, codes = (a[cells] for a in _by_hand(adata.obs))
    mu, logvar = m.encode(X[cells], c, codes=codes)
    L = X[cells].sum(axis=1)
    reps = 20000  # z draws per cell for the oracle
    rng = np.random.default_rng(1)
    z = np.tile(mu, (reps, 1)) + np.tile(np.exp(0.5 * logvar), (reps, 1)) * \
        rng.standard_normal((reps * 8, mu.shape[1])).astype(np.float32)
    oracle = m.decode(z, np.tile(c, (reps, 1)), size_factors=np.tile(L, reps),
                      codes=np.tile(codes, (reps, 1)))
    means = oracle.reshape(reps, 8, GENES)
    oracle = means.mean(axis=0)
    se = stack.std(axis=0) / np.sqrt(S)
    assert (np.abs(stack.mean(axis=0) - oracle) <= 5 * se + 0.02 * oracle + 1e-3).all()
    # the spread: NB given z has variance mu + mu^2/theta (theta: the model's
    # per-gene weights), plus the spread of mu over z. The sample variance of
    # 400 draws is off by ~10-20% per entry; the mean ratio over the 320
    # entries by ~1-2%, so 15% fails only a wrong law (Poisson would give
    # mu alone: a ratio of about 0.5 here)
    theta = np.exp(m.get_weights()["likelihood.log_theta"].astype(np.float64))
    var = (means + means ** 2 / theta).mean(axis=0) + means.var(axis=0)
    ratio = stack.var(axis=0, ddof=1) / var
    assert 0.85 < ratio.mean() < 1.15
    again = m.posterior_predictive_sample(sub, n_samples=2, seed=9)
    np.testing.assert_array_equal(again[0].toarray(), draws[0].toarray())


def test_zinb_sample_has_more_zeros(data):
    _, adata, X, *_ = data
    m = vaefast.VAE.from_anndata(adata, batch_key="batch", likelihood="zinb",
                                 hidden=(8,), latent_dim=2, seed=4)
    counts = m.posterior_predictive_sample(adata, seed=0)
    assert counts.shape == X.shape
    nb = vaefast.VAE.from_anndata(adata, batch_key="batch", likelihood="scvi_nb",
                                  hidden=(8,), latent_dim=2, seed=4)
    # untrained zinb: zero-inflation logits near 0, about half the counts dropped
    assert counts.sum() < 0.8 * nb.posterior_predictive_sample(adata, seed=0).sum()


def test_de_table_ranks_planted_genes(data):
    m, adata, X, genes, sign = data
    de = m.differential_expression(adata, "cell_type", "T", "B", n_draws=1000)
    assert isinstance(de, pd.DataFrame)
    for col in ("proba_de", "proba_not_de", "bayes_factor", "lfc_mean", "lfc_median",
                "lfc_std", "scale1", "scale2"):
        assert col in de.columns
    planted = {f"g{j}" for j in genes}
    assert set(de.index[:PLANTED]) == planted
    np.testing.assert_allclose(de["proba_de"] + de["proba_not_de"], 1.0)
    np.testing.assert_allclose(de["bayes_factor"], np.log(de["proba_de"] + 1e-8)
                               - np.log(de["proba_not_de"] + 1e-8))
    assert (np.sign(de.loc[[f"g{j}" for j in genes], "lfc_mean"]) == sign).all()
    assert (de["lfc_std"] > 0).all()


def test_vanilla_and_change_modes(data):
    m, adata, X, genes, sign = data
    change = m.differential_expression(adata, "cell_type", "T", n_draws=1000, seed=3)
    vanilla = m.differential_expression(adata, "cell_type", "T", mode="vanilla",
                                        n_draws=1000, seed=3)
    planted = [f"g{j}" for j in genes]
    assert set(vanilla.index[:PLANTED]) == set(planted)
    v = vanilla.loc[change.index]  # same draws, so the shared columns agree
    for col in ("proba_de", "lfc_mean", "lfc_std", "scale1", "scale2"):
        np.testing.assert_array_equal(v[col], change[col])
    np.testing.assert_allclose(v["proba_m1"] + v["proba_m2"], 1.0)
    # up in T (sign +) means h1 > h2 in almost every pair: a large positive factor
    bf = vanilla.loc[planted, "bayes_factor"].to_numpy()
    assert (np.sign(bf) == sign).all() and (np.abs(bf) > 3).all()
    with pytest.raises(ValueError, match="mode"):
        m.differential_expression(adata, "cell_type", "T", mode="other")


def test_import_stays_light():
    import subprocess
    import sys

    code = ("import sys, vaefast; bad = [m for m in ('anndata', 'pandas', 'scipy') "
            "if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_backed_file_reads_the_setup(data, tmp_path):
    m, adata, *_ = data
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    try:
        np.testing.assert_array_equal(m.get_latent_representation(backed),
                                      m.get_latent_representation(adata))
    finally:
        backed.file.close()


def test_table_without_pandas(data, monkeypatch):
    """The structured-array fallback holds the DataFrame's rows and columns."""
    import sys

    m, adata, *_ = data
    frame = m.differential_expression(adata, "cell_type", "T", n_draws=200, mode="vanilla")
    c, codes = _by_hand(adata.obs)  # obs is read with pandas: c and codes given instead
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    table = m.differential_expression(adata, "cell_type", "T", n_draws=200, mode="vanilla",
                                      c=c, codes=codes)
    assert isinstance(table, np.ndarray) and table.dtype.names[0] == "gene"
    assert list(table["gene"]) == list(frame.index)
    for col in frame.columns:
        np.testing.assert_array_equal(table[col], frame[col].to_numpy())


def test_doc_section_runs(data, tmp_path, monkeypatch):
    """docs/single-cell.md's AnnData API example runs on an AnnData with the
    obs columns and layer it names."""
    import pathlib
    import re

    _, adata, X, *_ = data
    obs = adata.obs.rename(columns={"age": "pct_mito"})
    obs["batch"] = obs["batch"].cat.rename_categories({"a": "b1"})
    cells = ad.AnnData(np.zeros_like(X), obs=obs, var=adata.var,
                       layers={"counts": sparse.csr_matrix(X)})
    doc = (pathlib.Path(__file__).parents[1] / "docs" / "single-cell.md").read_text()
    code = next(block for block in re.findall(r"```python\n(.*?)```", doc, re.S)
                if "from_anndata" in block)
    monkeypatch.chdir(tmp_path)
    scope = {"vaefast": vaefast, "adata": cells}
    exec(code, scope)
    assert scope["de"].shape == (GENES, 8) and scope["z"].shape == (N, 10)
    assert vaefast.VAE.load("model.vae").anndata_setup_["layer"] == "counts"
