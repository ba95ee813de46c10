"""to_torch and ONNX export of the dispersion modes "gene-batch", "gene-label"
and "gene-cell" (vaefast/interop/torch_dispersion.py, onnx_export.py's
log_theta) against the vaefast model itself.

PyTorch autograd of the module's ELBO is an independent computation of the
loss and of every gradient, the θ table's (an embedding lookup whose
gradient autograd adds back by code) and the gene-cell head's included.
Tolerances are tests/test_covariate_vae_torch.py's (float32 model, same
loss): the ELBO and loss to 2e-5 relative, gradients to 1e-3 relative plus
1e-4 of their block's largest entry, inference outputs to 1e-5 of their
scale (the same float32 terms summed in another order).
"""

import numpy as np
import pytest

import vaefast
import vaefast.interop

D, Z = 9, 3
LEVELS = (3, 2)
N_LABELS = 4
# case -> (model kwargs, the codes' column that picks θ's row, or None)
CASES = {
    "batch": (dict(dispersion="gene-batch"), 0),
    "label-side": (dict(dispersion="gene-label", n_labels=N_LABELS), 2),
    "label-cov": (dict(dispersion="gene-label", dispersion_covariate=1), 1),
    "cell": (dict(dispersion="gene-cell"), None),
}
CODE_LEVELS = LEVELS + (N_LABELS,)


def model(rng, case, likelihood="zinb", **kw):
    """A model of `case` whose covariate tables, θ table and θ head are of a
    trained model's size (the init's are small or zero)."""
    m = vaefast.VAE(D, hidden=(8, 6), latent_dim=Z, likelihood=likelihood, beta=0.7, seed=1,
                    categorical_covariates=LEVELS, **CASES[case][0], **kw)
    w = m.get_weights()
    for k in w:
        if k.endswith(".covariates") or k == "likelihood.log_theta_table":
            w[k] = rng.standard_normal(w[k].shape).astype(np.float32)
        if k.startswith("output_log_theta"):
            w[k] = (3 * w[k]).astype(np.float32)
    m.set_weights(w)
    return m


def data(rng, case, B=24):
    """Counts (every row with a count: scVI's library), the case's codes (the
    labels' column only for "label-side") and noise."""
    x = rng.poisson(1.5, (B, D)).astype(np.float32)
    x[rng.random(x.shape) < 0.4] = 0
    x[:, 0] += 1
    codes = np.stack([rng.integers(0, n, B) for n in CODE_LEVELS], axis=1)
    if case != "label-side":
        codes = codes[:, :len(LEVELS)]
    return x, codes, rng.standard_normal((B, Z)).astype(np.float32)


def expected_log_theta(m, case, z, codes):
    """Each row's clipped log θ as vaefast reads it: the table row of its
    code, or the gene-cell head's columns of the model's own output layer."""
    column = CASES[case][1]
    if column is not None:
        raw = m.get_weights()["likelihood.log_theta_table"][codes[:, column]]
    else:
        side = m._check_c(None, z.shape[0], codes=codes)
        raw = m._decode_raw(z, False, side)[:, -D:]
    return np.clip(raw, -20.0, 20.0)


# ------------------------------------------------------------------ PyTorch
@pytest.mark.parametrize("likelihood", ["zinb", "scvi_nb"])
@pytest.mark.parametrize("case", list(CASES))
def test_to_torch_matches_the_model_and_its_gradients(rng, case, likelihood):
    torch = pytest.importorskip("torch", reason="to_torch needs torch")
    from vaefast.interop.torch_export import vaefast_weights

    m = model(rng, case, likelihood)
    x, codes, eps = data(rng, case)
    t = vaefast.interop.to_torch(m)
    tx, tk, te = torch.from_numpy(x), torch.from_numpy(codes), torch.from_numpy(eps)
    mu, lv = m.encode(x, codes=codes)
    tmu, tlv = t.encode(tx, codes=tk)
    np.testing.assert_allclose(tmu.detach().numpy(), mu, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tlv.detach().numpy(), lv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(t.decode(tmu, codes=tk).detach().numpy(),
                               m.decode(mu, codes=codes), rtol=1e-5, atol=1e-7)
    want = expected_log_theta(m, case, mu, codes)
    np.testing.assert_allclose(t.log_theta(tmu, codes=tk).detach().numpy(), want,
                               rtol=1e-5, atol=1e-5 * np.abs(want).max())
    elbo = m.elbo(x, eps=eps, codes=codes)
    np.testing.assert_allclose(t(tx, te, codes=tk).detach().numpy(), elbo, rtol=2e-5)
    loss, grads = m.loss_and_grad(x, eps, codes=codes)
    t_loss = -t(tx, te, codes=tk).mean()
    t_loss.backward()
    np.testing.assert_allclose(float(t_loss.detach()), loss, rtol=2e-5)
    with torch.no_grad():  # the gradients in the parameters' places, read by name
        for p in t.parameters():
            p.copy_(p.grad)
    t_grads = vaefast_weights(t)
    theta_keys = [k for k in grads if "log_theta" in k]
    assert theta_keys and "likelihood.log_theta" not in grads
    assert set(t_grads) == set(grads)
    for k in theta_keys:
        assert np.abs(grads[k]).max() > 0, k  # θ is learned: the check below means something
    for k, g in grads.items():
        atol = 1e-4 * max(float(np.abs(g).max()), 1e-12)
        np.testing.assert_allclose(t_grads[k], g, rtol=1e-3, atol=atol, err_msg=k)


@pytest.mark.parametrize("case", ["batch", "label-side"])
def test_the_table_row_follows_the_code(rng, case):
    """Moving the θ code of a row changes its ELBO exactly as vaefast's does
    (with "label-side" the layers never see it, so the mean stays)."""
    torch = pytest.importorskip("torch", reason="to_torch needs torch")
    m = model(rng, case)
    x, codes, eps = data(rng, case)
    moved = codes.copy()
    col = CASES[case][1]
    moved[:, col] = (moved[:, col] + 1) % CODE_LEVELS[col]
    t = vaefast.interop.to_torch(m)
    got = t(torch.from_numpy(x), torch.from_numpy(eps), codes=torch.from_numpy(moved))
    want = m.elbo(x, eps=eps, codes=moved)
    assert not np.allclose(want, m.elbo(x, eps=eps, codes=codes))
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=2e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_from_torch_reads_the_modes_back(rng, case):
    pytest.importorskip("torch", reason="to_torch needs torch")
    m = model(rng, case)
    back = vaefast.interop.from_torch(vaefast.interop.to_torch(m), seed=1)
    assert back.get_config() == m.get_config()
    for k, w in m.get_weights().items():
        np.testing.assert_array_equal(back.get_weights()[k], w, err_msg=k)


def test_the_module_checks_the_label_column(rng):
    torch = pytest.importorskip("torch", reason="to_torch needs torch")
    t = vaefast.interop.to_torch(model(rng, "label-side"))
    x, codes, eps = data(rng, "label-side")
    tx, te = torch.from_numpy(x), torch.from_numpy(eps)
    with pytest.raises(ValueError, match=r"codes must have shape \(24, 3\)"):
        t(tx, te, codes=torch.from_numpy(codes[:, :2]))
    bad = codes.copy()
    bad[0, 2] = N_LABELS
    with pytest.raises(ValueError, match="codes out of range"):
        t(tx, te, codes=torch.from_numpy(bad))
    with pytest.raises(ValueError, match="codes is required"):
        t(tx, te)
    gaussian = vaefast.interop.to_torch(vaefast.VAE(D, hidden=(4,), latent_dim=Z,
                                                    likelihood="gaussian"))
    with pytest.raises(ValueError, match="has no θ"):
        gaussian.log_theta(torch.zeros(2, Z))


# ------------------------------------------------------------------ ONNX
def run(m, part, path, feeds):
    pytest.importorskip("onnx", reason="ONNX export needs the interop extra")
    ort = pytest.importorskip("onnxruntime", reason="running the graph needs onnxruntime")
    vaefast.interop.to_onnx(m, path, part=part)
    session = ort.InferenceSession(str(path))
    names = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    return names, dict(zip(outputs, session.run(None, {k: v for k, v in feeds.items()
                                                       if k in names})))


def close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("extra", [{}, dict(use_batch_norm="both")], ids=["plain", "bn"])
@pytest.mark.parametrize("case", list(CASES))
def test_onnx_graphs_give_the_mean_and_each_rows_theta(rng, case, extra, tmp_path):
    m = model(rng, case, **extra)
    x, codes, _ = data(rng, case)
    if extra:  # running statistics other than (0, 1): the folded affine must matter
        m.fit(np.repeat(x, 4, axis=0), epochs=1, batch_size=32, learning_rate=1e-6,
              codes=np.repeat(codes, 4, axis=0), progress=False)
    codes = codes.astype(np.int64)
    feeds = {"x": x, "codes": codes}
    mu, logvar = m.encode(x, codes=codes)
    names, out = run(m, "encoder", tmp_path / "e.onnx", feeds)
    assert "codes" not in names  # the encoder receives no covariates, nor θ
    close(out["mu"], mu)
    close(out["logvar"], logvar)
    names, out = run(m, "decoder", tmp_path / "d.onnx", {**feeds, "z": mu})
    assert names == ["z", "codes"] and sorted(out) == ["log_theta", "x_mean"]
    close(out["x_mean"], m.decode(mu, codes=codes))
    close(out["log_theta"], expected_log_theta(m, case, mu, codes))
    _, recon = run(m, "vae", tmp_path / "v.onnx", feeds)  # z = mu
    close(recon["x_mean"], m.decode(mu, codes=codes))
    close(recon["log_theta"], expected_log_theta(m, case, mu, codes))


def test_onnx_label_column_picks_theta_only(rng, tmp_path):
    """With n_labels the graph's codes are (N, K + 1): the labels move θ's
    row and nothing else."""
    m = model(rng, "label-side")
    x, codes, _ = data(rng, "label-side")
    z = m.encode(x, codes=codes)[0]
    moved = codes.astype(np.int64)
    moved[:, 2] = (moved[:, 2] + 1) % N_LABELS
    _, a = run(m, "decoder", tmp_path / "d.onnx", {"z": z, "codes": codes.astype(np.int64)})
    _, b = run(m, "decoder", tmp_path / "d.onnx", {"z": z, "codes": moved})
    np.testing.assert_array_equal(a["x_mean"], b["x_mean"])
    assert not np.allclose(a["log_theta"], b["log_theta"])
    close(b["log_theta"], expected_log_theta(m, "label-side", z, moved))


def test_gene_dispersion_graphs_are_unchanged(rng, tmp_path):
    """"gene" (θ one vector, no per-row output) keeps its graph outputs."""
    m = vaefast.VAE(D, hidden=(8,), latent_dim=Z, likelihood="zinb")
    x, _, _ = data(rng, "batch")
    _, out = run(m, "decoder", tmp_path / "d.onnx", {"z": m.encode(x)[0]})
    assert sorted(out) == ["x_mean"]
