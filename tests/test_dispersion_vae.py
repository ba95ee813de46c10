"""The Python VAE's ``dispersion=`` (vaefast/_dispersion_options.py over the
C core's modes, csrc/vae_dispersion.c) against the float64 twin
(vaefast.reference.covariate_model): loss, per-row ELBO and every gradient
per mode; training lowers the loss; 1/2 threads bit-identical; persistence;
every argument error (the exporters: tests/test_dispersion_export.py).

scVI's modes (scvi-tools 1.4 scvi/module/_vae.py): log θ per gene, a
(levels × D) table indexed by the batch or the label code, or a decoder head.
Tolerances are tests/test_covariate_vae.py's (float32 model, same loss): the
loss to 2e-5 relative, the gradients to 1e-3 relative plus 1e-4 of the
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
LEVELS = (3, 2, 4)  # the last covariate doubles as the label in "label-cov"
N_LABELS = 4
TWIN_LIK = {"zinb": "zinb", "scvi_nb": "nb"}
# case -> (model kwargs, model's covariate levels, twin's dispersion, the label column)
CASES = {
    "gene": (dict(dispersion="gene"), LEVELS, "gene", None),
    "batch": (dict(dispersion="gene-batch"), LEVELS, "gene-batch", None),
    "label-side": (dict(dispersion="gene-label", n_labels=N_LABELS), LEVELS[:2],
                   "gene-label", 2),
    "label-cov": (dict(dispersion="gene-label", dispersion_covariate=2), LEVELS,
                  "gene-label", 2),
    "cell": (dict(dispersion="gene-cell"), LEVELS, "gene-cell", None),
}


def vae(case, likelihood="zinb", beta=0.8, **kw):
    kwargs, levels, _, _ = CASES[case]
    return vaefast.VAE(D, hidden=HID, latent_dim=Z, likelihood=likelihood, beta=beta,
                       categorical_covariates=levels, **kwargs, **kw)


def twin(case, likelihood="zinb"):
    _, levels, mode, _ = CASES[case]
    return CovariateModel(D, HID, Z, levels, likelihood=TWIN_LIK[likelihood], dispersion=mode,
                          n_labels=N_LABELS)


def data(rng, B=16):
    """Counts (every row with a count: scVI's library), the three code
    columns (the model of "label-side" takes all three: two covariates, then
    the label) and noise."""
    x = rng.poisson(1.2, (B, D)).astype(np.float32)
    x[rng.random(x.shape) < 0.5] = 0
    x[:, 0] += 1
    codes = np.stack([rng.integers(0, n, B) for n in LEVELS], axis=1)
    eps = rng.standard_normal((B, Z)).astype(np.float32)
    return x, codes, eps


def model_codes(case, codes):
    """The model's codes= for a case: every column but the label's when the
    label is a covariate's; all three for the side column."""
    return codes if case != "label-side" else codes[:, :3]


@pytest.mark.parametrize("likelihood", ["zinb", "scvi_nb"])
@pytest.mark.parametrize("case", list(CASES))
def test_loss_elbo_and_gradients_match_the_twin(rng, case, likelihood, kernel_set):
    spec = twin(case, likelihood)
    params = rounded_to_float32(spec.init(rng))
    m = vae(case, likelihood)
    m.set_weights(vae_weights(spec, params))
    x, codes, eps = data(rng)
    label = CASES[case][3]
    layer_codes = codes[:, :len(CASES[case][1])]
    loss, grads = m.loss_and_grad(x, eps, codes=model_codes(case, codes))
    want, per_row, want_g = loss_and_grad(spec, params, x.astype(np.float64), layer_codes,
                                          None, None if label is None else codes[:, label],
                                          eps.astype(np.float64), beta=0.8)
    np.testing.assert_allclose(loss, want, rtol=2e-5)
    np.testing.assert_allclose(-m.elbo(x, eps=eps, codes=model_codes(case, codes)), per_row,
                               rtol=2e-5)
    want_named = vae_weights(spec, want_g)
    assert set(grads) == set(want_named)
    for k, w in want_named.items():
        atol = 1e-4 * max(float(np.abs(w).max()), 1e-12)
        np.testing.assert_allclose(grads[k], w, rtol=1e-3, atol=atol, err_msg=k)


def test_the_table_rows_and_head_are_what_decides_theta(rng):
    """θ's row follows the code: changing only the batch code of the θ table
    (a gene-batch model whose layers ignore the batch: their tables zeroed)
    changes the loss; equal table rows give equal losses."""
    m = vae("batch", seed=3)
    w = m.get_weights()
    for k in w:
        if k.endswith(".covariates"):
            w[k][...] = 0
    x, codes, eps = data(rng)
    other = codes.copy()
    other[:, 0] = (codes[:, 0] + 1) % 3
    m.set_weights(w)
    assert m.loss_and_grad(x, eps, codes=codes)[0] != m.loss_and_grad(x, eps, codes=other)[0]
    w["likelihood.log_theta_table"][...] = w["likelihood.log_theta_table"][0]
    m.set_weights(w)
    assert m.loss_and_grad(x, eps, codes=codes)[0] == m.loss_and_grad(x, eps, codes=other)[0]


def test_initialisation_follows_scvi(rng):
    """The θ table starts from N(0, 1) (scVI's torch.randn px_r); the head
    columns like the other output columns, U(±1/√in)."""
    big = vaefast.VAE(400, hidden=(8,), latent_dim=2, likelihood="zinb",
                      categorical_covariates=(50,), dispersion="gene-batch", seed=1)
    t = big.get_weights()["likelihood.log_theta_table"].astype(np.float64)
    assert t.shape == (50, 400)
    assert abs(t.mean()) < 0.02 and abs(t.std() - 1) < 0.02  # 20000 draws: σ/√n ≈ 0.007
    w = vae("cell").get_weights()
    bound = 1 / np.sqrt(HID[0])
    for k in ("output_log_theta.weight", "output_log_theta.bias"):
        assert np.abs(w[k]).max() <= bound and np.abs(w[k]).max() > 0.5 * bound


@pytest.mark.parametrize("case", ["batch", "label-side", "cell"])
def test_training_lowers_the_loss_and_is_bit_identical_for_1_and_2_threads(
        rng, case, threads_setting):
    x, codes, eps = data(rng, B=400)
    c = model_codes(case, codes)
    results = []
    for n in (1, 2):
        vaefast.set_num_threads(n)
        m = vae(case, seed=5)
        before = m.loss_and_grad(x, eps, codes=c)[0]
        m.fit(x, epochs=4, batch_size=64, learning_rate=1e-2, codes=c, progress=False)
        assert m.loss_and_grad(x, eps, codes=c)[0] < before
        results.append((m.get_weights(), m.transform(x, codes=c)))
    for k, w in results[1][0].items():
        np.testing.assert_array_equal(w, results[0][0][k], err_msg=k)
    np.testing.assert_array_equal(results[1][1], results[0][1])


@pytest.mark.parametrize("case", ["batch", "label-side", "label-cov", "cell"])
def test_save_load_pickle_copy_keep_the_mode(rng, tmp_path, case):
    x, codes, _ = data(rng, B=64)
    c = model_codes(case, codes)
    m = vae(case, seed=2, use_batch_norm="both")
    m.fit(x, epochs=1, batch_size=16, codes=c, progress=False)
    want = m.decode(m.transform(x, codes=c), codes=c)
    for fmt in ("npz", "safetensors"):
        m.save(tmp_path / f"m.{fmt}", format=fmt)
    for back in [pickle.loads(pickle.dumps(m)), copy.copy(m), copy.deepcopy(m),
                 *(vaefast.VAE.load(tmp_path / f"m.{fmt}") for fmt in ("npz", "safetensors"))]:
        assert back.dispersion == m.dispersion
        assert back.get_config() == m.get_config()
        for k, w in m.get_weights().items():
            np.testing.assert_array_equal(back.get_weights()[k], w, err_msg=k)
        np.testing.assert_array_equal(back.decode(back.transform(x, codes=c), codes=c), want)


def test_old_files_load_with_per_gene_theta(tmp_path):
    """A config without the dispersion entries (every file written before
    them) is dispersion="gene", with its per-gene vector."""
    m = vaefast.VAE(D, hidden=(4,), latent_dim=2, likelihood="zinb")
    assert "dispersion" not in m.get_config()
    m.save(tmp_path / "old.npz")
    back = vaefast.VAE.load(tmp_path / "old.npz")
    assert back.dispersion == "gene" and "likelihood.log_theta" in back.get_weights()


def as_gene_model(m, log_theta):
    """A dispersion="gene" model with m's layers and θ = exp(log_theta)."""
    g = vaefast.VAE(D, hidden=HID, latent_dim=Z, likelihood=m.likelihood, beta=0.8,
                    categorical_covariates=m.categorical_covariates)
    w = {k: v for k, v in m.get_weights().items()
         if k != "likelihood.log_theta_table" and not k.startswith("output_log_theta")}
    g.set_weights({**w, "likelihood.log_theta": np.asarray(log_theta, np.float32)})
    return g


@pytest.mark.parametrize("likelihood", ["zinb", "scvi_nb"])
@pytest.mark.parametrize("case", ["batch", "label-side"])
def test_log_likelihood_and_sampling_read_each_rows_table_row(rng, case, likelihood):
    """On the rows of one code, a table mode's log_likelihood and sampled
    counts are the "gene" model's with θ = that code's table row."""
    x, codes, _ = data(rng, B=60)
    m = vae(case, likelihood, seed=1)
    table = 0.5 * rng.standard_normal(m.get_weights()["likelihood.log_theta_table"].shape)
    m.set_weights({**m.get_weights(), "likelihood.log_theta_table": table.astype(np.float32)})
    col = 0 if case == "batch" else 2
    for level in range(len(table)):
        rows = codes[:, col] == level
        g = as_gene_model(m, table[level])
        c = model_codes(case, codes)[rows]
        layer_codes = c[:, :len(m.categorical_covariates)]
        np.testing.assert_array_equal(m.log_likelihood(x[rows], 4, seed=3, codes=c),
                                      g.log_likelihood(x[rows], 4, seed=3, codes=layer_codes))
        draws = [list(model._draw_counts(x[rows], model._check_c(None, rows.sum(), codes=cc),
                                         2, np.random.default_rng(8)))
                 for model, cc in ((m, c), (g, layer_codes))]
        for a, b in zip(*draws):
            np.testing.assert_array_equal(a, b)


def test_log_likelihood_reads_the_gene_cell_head(rng):
    """With the head's weights 0 and bias v, "gene-cell" is "gene" with
    log θ = v (the output layer computed 1/3 wider: float32 rounding)."""
    x, codes, _ = data(rng, B=40)
    m = vae("cell", seed=2)
    v = (0.3 * rng.standard_normal(D)).astype(np.float32)
    w = m.get_weights()
    w["output_log_theta.weight"][...] = 0
    w["output_log_theta.bias"][...] = v
    m.set_weights(w)
    g = as_gene_model(m, v)
    np.testing.assert_allclose(m.log_likelihood(x, 4, seed=3, codes=codes),
                               g.log_likelihood(x, 4, seed=3, codes=codes), rtol=1e-5)
    with pytest.raises(NotImplementedError, match="dispersion='gene-cell'"):
        m._extra_param()  # no per-gene vector to read


def test_errors_name_the_argument(rng):
    x, codes, eps = data(rng)
    with pytest.raises(ValueError, match="dispersion must be one of"):
        vaefast.VAE(D, likelihood="zinb", dispersion="per-gene")
    with pytest.raises(ValueError, match="dispersion must be one of"):
        vaefast.VAE(D, likelihood="zinb", dispersion=None)
    with pytest.raises(ValueError, match="dispersion='gene-batch' needs a likelihood"):
        vaefast.VAE(D, likelihood="negative_binomial", categorical_covariates=2,
                    dispersion="gene-batch")
    with pytest.raises(ValueError, match="dispersion='gene-cell' needs a likelihood"):
        vaefast.VAE(D, likelihood="poisson", dispersion="gene-cell")
    with pytest.raises(ValueError, match="needs categorical_covariates"):
        vaefast.VAE(D, likelihood="zinb", dispersion="gene-batch")
    with pytest.raises(ValueError, match="'gene-label' needs n_labels"):
        vaefast.VAE(D, likelihood="zinb", categorical_covariates=2, dispersion="gene-label")
    with pytest.raises(ValueError, match=r"dispersion_covariate must be in \[0, 1\)"):
        vaefast.VAE(D, likelihood="zinb", categorical_covariates=2, dispersion="gene-batch",
                    dispersion_covariate=1)
    with pytest.raises(TypeError, match="dispersion_covariate must be an integer"):
        vaefast.VAE(D, likelihood="zinb", categorical_covariates=2, dispersion="gene-batch",
                    dispersion_covariate=True)
    with pytest.raises(ValueError, match="n_labels must be >= 1"):
        vaefast.VAE(D, likelihood="zinb", dispersion="gene-label", n_labels=0)
    with pytest.raises(ValueError, match="n_labels is only for"):
        vaefast.VAE(D, likelihood="zinb", categorical_covariates=2, dispersion="gene-batch",
                    n_labels=3)
    with pytest.raises(ValueError, match="dispersion_covariate is only for"):
        vaefast.VAE(D, likelihood="zinb", dispersion="gene-cell", dispersion_covariate=0)
    with pytest.raises(ValueError, match="not both"):
        vaefast.VAE(D, likelihood="zinb", categorical_covariates=2, dispersion="gene-label",
                    dispersion_covariate=0, n_labels=3)
    # the label column of the codes: missing, out of range, wrong width
    side = vae("label-side")
    with pytest.raises(ValueError, match="codes is required: dispersion='gene-label'"):
        side.transform(x)
    with pytest.raises(ValueError, match=r"codes must have shape \(16, 3\)"):
        side.loss_and_grad(x, eps, codes=codes[:, :2])
    bad = codes.copy()
    bad[5, 2] = N_LABELS
    with pytest.raises(ValueError, match=r"codes\[:, 2\] must lie in \[0, 4\), got 4"):
        side.fit(x, epochs=1, codes=bad, progress=False)
    bad[5, 2] = -1
    with pytest.raises(ValueError, match=r"codes\[:, 2\]"):
        side.elbo(x, eps=eps, codes=bad)
    only_labels = vaefast.VAE(D, hidden=(4,), latent_dim=2, likelihood="zinb",
                              dispersion="gene-label", n_labels=2)
    with pytest.raises(ValueError, match=r"codes must have shape \(16, 1\)"):
        only_labels.encode(x, codes=codes)
    np.testing.assert_array_equal(  # the labels alone, as a (n, 1) column
        only_labels.encode(x, codes=codes[:, 1:2])[0],
        only_labels.encode(x, codes=1 - codes[:, 1:2])[0])


def test_from_anndata_labels_key_is_the_last_code_column(rng, tmp_path):
    """from_anndata(labels_key=, dispersion="gene-label"): n_labels from the
    obs column's categories, the label appended to the codes it builds; the
    fit on the AnnData is the fit on the dense counts with codes built by
    hand; the setup survives save/load; the argument errors."""
    ad = pytest.importorskip("anndata", reason="the AnnData route needs the anndata extra")
    pd = pytest.importorskip("pandas")
    n, kinds = 96, ("T", "B", "NK")
    x = rng.poisson(2.0, (n, D)).astype(np.float32)
    x[:, 0] += 1
    batch, kind = rng.choice(["a", "b"], n), rng.choice(kinds, n)
    adata = ad.AnnData(x, obs=pd.DataFrame(
        {"batch": pd.Categorical(batch, categories=["a", "b"]),
         "kind": pd.Categorical(kind, categories=list(kinds))},
        index=[f"c{i}" for i in range(n)]))

    def build(**kw):
        return vaefast.VAE.from_anndata(adata, batch_key="batch", likelihood="zinb",
                                        hidden=(8,), latent_dim=3, seed=4, **kw)

    m = build(labels_key="kind", dispersion="gene-label")
    assert m.get_config()["n_labels"] == 3 and m.categorical_covariates == (2,)
    codes = np.stack([(batch == "b").astype(int), [kinds.index(k) for k in kind]], axis=1)
    dense = build(labels_key="kind", dispersion="gene-label")
    m.fit(adata, epochs=2, batch_size=32, progress=False)
    dense.fit(x, epochs=2, batch_size=32, codes=codes, progress=False)
    for k, w in dense.get_weights().items():
        np.testing.assert_array_equal(m.get_weights()[k], w, err_msg=k)
    want = dense.transform(x, codes=codes)
    np.testing.assert_array_equal(m.get_latent_representation(adata), want)
    m.save(tmp_path / "m.npz")
    back = vaefast.VAE.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.get_latent_representation(adata), want)
    from vaefast._anndata_setup import check_stored

    for setup, n_labels in ((m.anndata_setup_, 2), (m.anndata_setup_, None),
                            ({k: v for k, v in m.anndata_setup_.items() if k != "labels"}, 3)):
        with pytest.raises(ValueError, match="corrupt"):  # a stored setup must fit the model
            check_stored(setup, 0, "f.npz", [2], n_labels)
    assert check_stored(m.anndata_setup_, 0, "f.npz", [2], 3) is m.anndata_setup_
    with pytest.raises(ValueError, match="labels_key is only for dispersion='gene-label'"):
        build(labels_key="kind")
    with pytest.raises(ValueError, match="n_labels comes from the AnnData"):
        build(labels_key="kind", dispersion="gene-label", n_labels=3)
    with pytest.raises(KeyError, match="labels_key"):
        build(labels_key="cell_type", dispersion="gene-label")
    with pytest.raises(ValueError, match="'gene-label' needs n_labels"):
        build(dispersion="gene-label")
    other = adata.copy()
    other.obs["kind"] = pd.Categorical(["DC"] * n)
    with pytest.raises(ValueError, match=r"obs column 'kind' \(labels_key\) has category 'DC'"):
        m.get_latent_representation(other)
