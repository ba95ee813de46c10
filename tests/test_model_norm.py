"""The VAE with batch / layer normalisation on its hidden layers
(csrc/vae_norm.c, vaefast/_hidden_options.py) against the float64 twin
(vaefast/reference/hidden.py) by central differences, against a PyTorch
model with BatchNorm1d / LayerNorm, and for threads, save/load and checks.

Tolerances as in test_dropout.py: float32 loss rtol 1e-5; gradients through
float32 GEMMs and normalisations rtol 1e-4 with atol 1e-4 × max |gradient|.
"""

import pickle

import numpy as np
import pytest

import vaefast
from vaefast.reference import from_named
from vaefast.reference import norm as norm_twin
from vaefast.reference.dropout import layer_masks
from vaefast.reference.hidden import BN_EPS, BN_MOMENTUM, LN_EPS, HiddenLayer, loss as twin_loss
from vaefast.reference.rng import reparam_eps


D, Z, ENC, DEC = 7, 3, (6, 5), (4,)
CONFIGS = {
    "bn_both": dict(use_batch_norm="both"),
    "ln_both": dict(use_layer_norm="both"),
    "bn_enc_ln_dec_dropout": dict(use_batch_norm="encoder", use_layer_norm="both",
                                  dropout_rate=0.3),
}


def model(seed=3, **kw):
    return vaefast.VAE(D, hidden=ENC, decoder_hidden=DEC, latent_dim=Z, seed=seed, **kw)


def data(B, seed=0):
    return (np.random.default_rng(seed).random((B, D)) < 0.4).astype(np.float32)


def on(option, side):
    return option in (side, "both")


def twin_layers(m, w, B):
    """The HiddenLayer list of each side for model m, weights w, at its step."""
    p = m.dropout_rate
    p_enc = p if on(m.dropout_on, "encoder") else 0.0
    p_dec = p if on(m.dropout_on, "decoder") else 0.0
    masks = layer_masks(m.seed, m.step_, 0, B, ENC, DEC, p_enc, p_dec)
    out = []
    for side, widths, keeps, rate in (("encoder", ENC, masks[0], p_enc),
                                      ("decoder", DEC, masks[1], p_dec)):
        out.append([HiddenLayer(k if rate else None, rate,
                                (w[f"{side}.{i}.batch_norm.weight"],
                                 w[f"{side}.{i}.batch_norm.bias"])
                                if on(m.use_batch_norm, side) else None,
                                on(m.use_layer_norm, side))
                    for i, k in enumerate(keeps)])
    return out


def perturbed(m, key):
    """A fresh weight set with the batch-norm scales and shifts moved off
    (1, 0), so that their gradients are tested at a generic point."""
    rng = np.random.default_rng(7)
    w = m.get_weights()
    for k in w:
        if ".batch_norm." in k:
            w[k] = (w[k] + rng.uniform(-0.5, 0.5, w[k].shape)).astype(np.float32)
    m.set_weights(w)
    return {k: v.astype(np.float64) for k, v in w.items()}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_loss_and_gradients_match_twin_by_central_differences(name, assert_named_gradients):
    m = model(**CONFIGS[name])
    m.step_ = 5
    w = perturbed(m, name)
    X = data(9)
    loss, grads = m.loss_and_grad(X)
    enc, dec = twin_layers(m, w, 9)
    eps = reparam_eps(m.seed, m.step_, 0, 9, Z)
    x64 = X.astype(np.float64)

    def loss_of(named):
        e, d = twin_layers(m, named, 9)
        return twin_loss(from_named(named, len(ENC), len(DEC)), x64, eps, e, d)

    np.testing.assert_allclose(loss, loss_of(w), rtol=1e-5)
    assert_named_gradients(grads, loss_of, w)


def test_matches_torch_model_with_batchnorm1d_and_layernorm(torch_loss_hidden):
    torch = pytest.importorskip("torch")
    m = model(use_batch_norm="both", use_layer_norm="decoder")
    w = perturbed(m, "torch")
    X = data(12, seed=1)
    before = m._core.get_norm_stats()
    loss, grads = m.loss_and_grad(X)
    eps = torch.tensor(reparam_eps(m.seed, m.step_, 0, 12, Z))
    t = {k: torch.tensor(v, requires_grad=True) for k, v in w.items()}
    bns = {}

    def hidden(y, side, i):
        width = y.shape[1]
        stats = bns[f"{side}.{i}"] = (torch.zeros(width, dtype=torch.float64),
                                      torch.ones(width, dtype=torch.float64))
        y = torch.nn.functional.batch_norm(  # BatchNorm1d's maths, training mode
            y, *stats, t[f"{side}.{i}.batch_norm.weight"], t[f"{side}.{i}.batch_norm.bias"],
            training=True, momentum=BN_MOMENTUM, eps=BN_EPS)
        if side == "decoder":
            y = torch.nn.functional.layer_norm(y, (width,), eps=LN_EPS)
        return torch.relu(y)

    want_loss = torch_loss_hidden(t, X, eps.numpy(), hidden)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    for k, v in t.items():
        want = v.grad.numpy()
        np.testing.assert_allclose(grads[k], want, rtol=1e-4,
                                   atol=1e-4 * np.abs(want).max() + 1e-7, err_msg=k)
    # running statistics: forward order, each layer's mean then variance
    np.testing.assert_array_equal(before, np.concatenate(
        [np.r_[np.zeros(n), np.ones(n)] for n in (*ENC, *DEC)]).astype(np.float32))
    want_stats = np.concatenate([np.r_[mean.numpy(), var.numpy()] for mean, var in bns.values()])
    np.testing.assert_allclose(m._core.get_norm_stats(), want_stats, rtol=1e-5, atol=1e-7)


def test_inference_uses_the_running_statistics():
    m = model(use_batch_norm="both", use_layer_norm="encoder", dropout_rate=0.2)
    X = data(200, seed=2)
    m.fit(X, epochs=3, batch_size=32, progress=False)
    stats = m._core.get_norm_stats().astype(np.float64)
    assert not np.array_equal(stats[:ENC[0]], np.zeros(ENC[0]))  # they moved
    w = {k: v.astype(np.float64) for k, v in m.get_weights().items()}
    h, off = X.astype(np.float64), 0
    for i, width in enumerate(ENC):
        y = h @ w[f"encoder.{i}.weight"] + w[f"encoder.{i}.bias"]
        y = norm_twin.batch_norm_infer(y, w[f"encoder.{i}.batch_norm.weight"],
                                       w[f"encoder.{i}.batch_norm.bias"],
                                       stats[off:off + width], stats[off + width:off + 2 * width],
                                       BN_EPS)
        h = norm_twin.layer_norm_forward(y, LN_EPS, relu=True)[0]
        off += 2 * width
    mu, logvar = m.encode(X)
    np.testing.assert_allclose(mu, h @ w["mu.weight"] + w["mu.bias"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logvar, h @ w["logvar.weight"] + w["logvar.bias"], rtol=1e-4,
                               atol=1e-5)
    # inference is a function of the row alone: no batch statistics
    np.testing.assert_array_equal(m.encode(X[:1])[0], mu[:1])


def fit_state(threads, **kw):
    vaefast.set_num_threads(threads)
    m = vaefast.VAE(40, hidden=(300,), latent_dim=8, likelihood="poisson", seed=1,
                    use_batch_norm="both", use_layer_norm="decoder", dropout_rate=0.1, **kw)
    X = np.random.default_rng(2).poisson(1.0, (520, 40)).astype(np.float32)
    m.fit(X, epochs=2, batch_size=256, progress=False)
    return m.get_weights(), m._core.get_norm_stats()


def test_seeded_fit_bit_identical_for_1_2_3_threads(threads_setting):
    want_w, want_s = fit_state(1)
    for threads in (2, 3):
        got_w, got_s = fit_state(threads)
        np.testing.assert_array_equal(got_s, want_s, err_msg=f"{threads} threads")
        for k in want_w:
            np.testing.assert_array_equal(got_w[k], want_w[k], err_msg=f"{threads}: {k}")


def test_sparse_input_trains_as_dense_with_a_normalised_first_layer():
    sp = pytest.importorskip("scipy.sparse")
    X = np.random.default_rng(4).poisson(0.5, (90, D)).astype(np.float32)
    runs = []
    for data_ in (X, sp.csr_matrix(X)):
        m = model(use_batch_norm="encoder", likelihood="poisson")
        m.fit(data_, epochs=2, batch_size=30, progress=False)
        runs.append((m.get_weights(), m._core.get_norm_stats()))
    for k in runs[0][0]:
        np.testing.assert_array_equal(runs[1][0][k], runs[0][0][k], err_msg=k)
    np.testing.assert_array_equal(runs[1][1], runs[0][1])


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_save_load_and_pickle_carry_parameters_and_running_statistics(tmp_path, fmt):
    X = data(64)
    m = model(use_batch_norm="both", use_layer_norm="encoder", dropout_rate=0.2)
    m.fit(X, epochs=1, batch_size=16, progress=False)
    path = tmp_path / "m.vae"
    m.save(path, format=fmt)
    copies = [vaefast.VAE.load(path), pickle.loads(pickle.dumps(m))]
    m.fit(X, epochs=1, batch_size=16, progress=False)
    for c in copies:
        assert c.get_config() == m.get_config()
        c.fit(X, epochs=1, batch_size=16, progress=False)
        np.testing.assert_array_equal(c._core.get_norm_stats(), m._core.get_norm_stats())
        for k, v in m.get_weights().items():
            np.testing.assert_array_equal(c.get_weights()[k], v, err_msg=k)
        np.testing.assert_array_equal(c.encode(X)[0], m.encode(X)[0])


def test_weights_layout_and_initial_values():
    plain, m = model(), model(use_batch_norm="both")
    w, w0 = m.get_weights(), plain.get_weights()
    for k in w0:  # the other layers draw the same initial values
        np.testing.assert_array_equal(w[k], w0[k], err_msg=k)
    for side, widths in (("encoder", ENC), ("decoder", DEC)):
        for i, width in enumerate(widths):
            np.testing.assert_array_equal(w[f"{side}.{i}.batch_norm.weight"], np.ones(width))
            np.testing.assert_array_equal(w[f"{side}.{i}.batch_norm.bias"], np.zeros(width))
    assert m.num_params() == plain.num_params() + 2 * (sum(ENC) + sum(DEC))
    assert "use_batch_norm" not in plain.get_config()


@pytest.mark.parametrize("kw, name", [
    ({"use_batch_norm": "yes"}, "use_batch_norm"),
    ({"use_batch_norm": None}, "use_batch_norm"),
    ({"use_layer_norm": True}, "use_layer_norm"),
])
def test_bad_options_name_themselves(kw, name):
    with pytest.raises(ValueError, match=name):
        model(**kw)


def test_fit_refuses_a_one_row_batch_and_comm():
    m = model(use_batch_norm="encoder")
    with pytest.raises(ValueError, match="batch_size"):
        m.fit(data(33), epochs=1, batch_size=32, progress=False)
    with pytest.raises(ValueError):  # the core refuses one row, too
        m.loss_and_grad(data(1))


def test_fit_refuses_data_parallel_batch_norm():
    MPI = pytest.importorskip("mpi4py.MPI")
    with pytest.raises(ValueError, match="comm"):
        model(use_batch_norm="both").fit(data(32), epochs=1, batch_size=16, progress=False,
                                         comm=MPI.COMM_SELF)


def test_exporters_refuse_normalised_models():
    m = model(use_layer_norm="decoder")
    from vaefast.interop._model_spec import ONNX_ALSO, TORCH_ALSO, exportable_config

    with pytest.raises(NotImplementedError, match="use_layer_norm"):  # ONNX: no layer norm
        exportable_config(m, ONNX_ALSO)
    with pytest.raises(NotImplementedError, match="use_batch_norm"):  # an exporter without
        exportable_config(model(use_batch_norm="both"))
    assert exportable_config(m, TORCH_ALSO)["use_layer_norm"] == "decoder"
    assert exportable_config(model(dropout_rate=0.1))["dropout_rate"] == 0.1


def test_to_torch_module_computes_the_same_model():
    """Eval mode: the running statistics (inference); train mode without
    dropout: batch statistics, the same loss and gradients as the core
    (torch float64 on the float32 weights; tolerances as above)."""
    torch = pytest.importorskip("torch")
    from vaefast import interop

    X = data(64, seed=8)
    m = model(use_batch_norm="both", use_layer_norm="encoder")
    m.fit(X, epochs=2, batch_size=16, progress=False)
    n = m._core.get_norm_stats().size
    m._core.set_norm_stats(np.random.default_rng(9).uniform(0.3, 2.0, n).astype(np.float32))
    module = interop.to_torch(m).double().eval()
    x = torch.tensor(X, dtype=torch.float64)
    mu, logvar = (t.detach().numpy() for t in module.encode(x))
    want_mu, want_logvar = m.encode(X)
    np.testing.assert_allclose(mu, want_mu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logvar, want_logvar, rtol=1e-4, atol=1e-5)
    module.train()
    eps = reparam_eps(m.seed, m.step_, 0, 64, Z)
    loss = -module(x, torch.tensor(eps)).mean()
    loss.backward()
    got_loss, grads = m.loss_and_grad(X, eps=eps.astype(np.float32))
    np.testing.assert_allclose(got_loss, loss.item(), rtol=1e-5)
    from vaefast.interop.torch_export import batch_norm_targets

    for prefix, bn in batch_norm_targets(module):
        want = bn.weight.grad.numpy()
        np.testing.assert_allclose(grads[f"{prefix}.batch_norm.weight"], want, rtol=1e-4,
                                   atol=1e-4 * np.abs(want).max())
    with pytest.raises(ValueError, match="BatchNorm1d"):  # no way back yet
        interop.from_torch(module)


@pytest.mark.parametrize("part", ["encoder", "decoder", "vae"])
def test_onnx_export_folds_batch_norm(tmp_path, part):
    """The exported graph (batch norm folded into the Linear layers) computes
    what the model's inference computes: float32 rounding of the folding,
    a few ulps of values O(1-10), hence rtol 1e-4 / atol 1e-4."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from vaefast import interop

    m = model(use_batch_norm="both", dropout_rate=0.1, likelihood="gaussian")
    X = np.random.default_rng(5).standard_normal((200, D)).astype(np.float32)
    m.fit(X, epochs=3, batch_size=32, progress=False)
    n = m._core.get_norm_stats().size  # statistics far from (0, 1): folding matters
    m._core.set_norm_stats(np.random.default_rng(7).uniform(0.3, 2.0, n).astype(np.float32))
    path = tmp_path / f"{part}.onnx"
    interop.to_onnx(m, path, part=part)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    z = np.random.default_rng(6).standard_normal((50, Z)).astype(np.float32)
    x_in = z if part == "decoder" else X[:50]
    got = sess.run(None, {sess.get_inputs()[0].name: x_in})
    if part == "encoder":
        want = m.encode(X[:50])
    elif part == "decoder":
        want = (m.decode(z),)
    else:
        want = (m.decode(m.encode(X[:50])[0]),)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_from_anndata_uses_scvi_defaults():
    ad = pytest.importorskip("anndata")
    adata = ad.AnnData(np.random.default_rng(0).poisson(1.0, (10, D)).astype(np.float32))
    m = vaefast.VAE.from_anndata(adata, hidden=(4,), latent_dim=2, likelihood="poisson")
    assert (m.use_batch_norm, m.use_layer_norm) == ("both", "none")


def test_a_rejected_step_leaves_the_running_statistics():
    """A step that turns non-finite changes no parameter (test_hardening) and,
    likewise, no running statistic."""
    m = model(use_batch_norm="both")
    X = data(16)
    m.loss_and_grad(X)
    before, weights = m._core.get_norm_stats(), m.get_weights()
    huge = weights["encoder.0.weight"].copy()
    huge[:] = 3e38  # X·W overflows float32: the loss becomes NaN
    m.set_weights({**weights, "encoder.0.weight": huge})
    with pytest.raises(vaefast.NonFiniteError):
        m.loss_and_grad(X)
    np.testing.assert_array_equal(m._core.get_norm_stats(), before)
    m.set_weights(weights)
    m.loss_and_grad(X)  # a finite step moves them again
    assert not np.array_equal(m._core.get_norm_stats(), before)


def test_bf16_precision_with_norms_and_dropout(threads_setting):
    """precision="bf16" runs the normalised layers' products in bf16 (the
    norms stay float32): the fit learns like the float32 one (held-out ELBO
    within 2% on this small problem) and is bit-identical on 1 and 2 threads."""
    X = (np.random.default_rng(10).random((300, D)) < 0.4).astype(np.float32)
    results = {}
    for precision, threads in (("fp32", 1), ("bf16", 1), ("bf16", 2)):
        vaefast.set_num_threads(threads)
        m = model(use_batch_norm="both", use_layer_norm="decoder", dropout_rate=0.1,
                  precision=precision)
        m.fit(X[:256], epochs=5, batch_size=32, progress=False)
        results[precision, threads] = (m.get_weights(), m._core.get_norm_stats(),
                                       float(m.elbo(X[256:], seed=0).mean()))
    for k, v in results["bf16", 1][0].items():
        np.testing.assert_array_equal(results["bf16", 2][0][k], v, err_msg=k)
    np.testing.assert_array_equal(results["bf16", 2][1], results["bf16", 1][1])
    assert abs(results["bf16", 1][2] - results["fp32", 1][2]) <= 0.02 * abs(results["fp32", 1][2])
