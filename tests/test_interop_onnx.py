"""ONNX export: graphs checked by onnx.checker, run in onnxruntime, compared
with vaefast and with a float64 NumPy forward pass of the same weights.

Tolerance. A float32 dot product of K terms plus a bias, summed in any
order (blocked, FMA or not), is within g_K·Σ|x_i||w_i| (+|b|) of the exact
value, g_K = (K+1)·u/(1 − (K+1)·u), u = 2**-24. ReLU, Clip and the sigmoid
are 1-Lipschitz, so an error d in a layer's input reaches its output as at
most |W|ᵀd. By induction each implementation is within (Σ_l g_{K_l})·A of
the exact result, where A is the forward pass run on |x|, |W|, |b| in
float64 (to first order; a factor 2 covers the rest), plus a few ulps of
the elementwise functions (expf in the sigmoid: 1e-6 absolute on a value
in (0, 1)). Two implementations differ by at most twice that. The bound
scales with the data: a wrong weight, a transposed matrix or a missing
bias moves outputs by O(A), thousands of times more.
"""

import os

import numpy as np
import pytest

import vaefast
from vaefast import interop

onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx package")
ort = pytest.importorskip("onnxruntime", reason="running exported graphs needs onnxruntime")

U = 2.0 ** -24
ELEMENTWISE_ATOL = 1e-6
D, Z = 40, 5
ARCHS = [((), ()), ((16,), None), ((32, 16), (12,))]
# Float64 mean of p(x|z) from the output layer, per likelihood. Every
# likelihood the model has is tested: a new one fails here until its mean
# is added (and its entry in vaefast/interop/_likelihoods.py).
MEAN = {"bernoulli": lambda out: 1 / (1 + np.exp(-out)), "gaussian": lambda out: out}
LIKELIHOODS = vaefast.model._LIKELIHOODS


def make_model(likelihood, hidden, dec, seed=3):
    """A VAE with weights ~N(0, 0.3²) (not the tiny init) so every unit is used."""
    m = vaefast.VAE(D, hidden=hidden, latent_dim=Z, likelihood=likelihood, seed=seed,
                    decoder_hidden=dec)
    rng = np.random.default_rng(seed)
    m.set_weights({k: 0.3 * rng.standard_normal(v.shape) for k, v in m.get_weights().items()})
    return m


def data(n, seed=0):
    return np.random.default_rng(seed).random((n, D)).astype(np.float32)


def chain(weights, layers, x, clip=False):
    """Float64 forward through `layers` (ReLU after the hidden ones) and the
    error bound of one float32 implementation."""
    h, a, g = x.astype(np.float64), np.abs(x.astype(np.float64)), 0.0
    for name in layers:
        W = weights[f"{name}.weight"].astype(np.float64)
        b = weights[f"{name}.bias"].astype(np.float64)
        h, a = h @ W + b, a @ np.abs(W) + np.abs(b)
        k = W.shape[0] + 1
        g += k * U / (1 - k * U)
        if name.startswith(("encoder.", "decoder.")):
            h = np.maximum(h, 0)
    if clip:
        h = np.clip(h, *vaefast._core.LOGVAR_RANGE)
    return h, 2 * g * a  # factor 2: the higher-order terms, generously


def enc_layers(m):
    return [f"encoder.{i}" for i in range(len(m.hidden))]


def dec_layers(m):
    return [f"decoder.{i}" for i in range(len(m.decoder_hidden))] + ["output"]


def oracle(m, part, x):
    """{output name: (float64 value, one implementation's error bound)}."""
    w = m.get_weights()
    if part == "encoder":
        return {"mu": chain(w, enc_layers(m) + ["mu"], x),
                "logvar": chain(w, enc_layers(m) + ["logvar"], x, clip=True)}
    layers = dec_layers(m) if part == "decoder" else enc_layers(m) + ["mu"] + dec_layers(m)
    out, bound = chain(w, layers, x)
    if m.likelihood not in MEAN:
        pytest.fail(f"no float64 mean for the {m.likelihood!r} likelihood in this test")
    return {"x_mean": (MEAN[m.likelihood](out), bound + ELEMENTWISE_ATOL)}


def vaefast_outputs(m, part, x):
    if part == "encoder":
        mu, lv = m.encode(x)
        return {"mu": mu, "logvar": lv}
    return {"x_mean": m.decode(x) if part == "decoder" else m.reconstruct(x)}


def session(path, threads=1):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("hidden, dec", ARCHS)
@pytest.mark.parametrize("part", ["encoder", "decoder", "vae"])
def test_onnxruntime_matches_vaefast_and_float64(tmp_path, likelihood, hidden, dec, part):
    m = make_model(likelihood, hidden, dec)
    path = tmp_path / f"{part}.onnx"
    proto = m.to_onnx(path, part=part)
    onnx.checker.check_model(onnx.load(os.fspath(path)), full_check=True)
    assert proto.opset_import[0].version == 17
    sess = session(path)
    for n in (1, 7, 300):  # the batch dimension is dynamic
        x = (np.random.default_rng(n).standard_normal((n, Z)).astype(np.float32)
             if part == "decoder" else data(n, seed=n))
        feed = {sess.get_inputs()[0].name: x}
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
        ours = vaefast_outputs(m, part, x)
        want = oracle(m, part, x)
        assert set(got) == set(ours) == set(want)
        for name, (exact, bound) in want.items():
            assert got[name].shape == ours[name].shape == exact.shape
            assert got[name].dtype == np.float32
            assert np.all(np.abs(got[name] - exact) <= bound), (name, n)
            assert np.all(np.abs(ours[name] - exact) <= bound), (name, n)
            assert np.all(np.abs(got[name] - ours[name]) <= 2 * bound), (name, n)


@pytest.mark.parametrize("part, inputs, outputs", [
    ("encoder", {"x": D}, {"mu": Z, "logvar": Z}),
    ("decoder", {"z": Z}, {"x_mean": D}),
    ("vae", {"x": D}, {"x_mean": D}),
])
def test_graph_names_shapes_and_weight_names(tmp_path, part, inputs, outputs):
    m = make_model("bernoulli", (16,), None)
    proto = m.to_onnx(tmp_path / "m.onnx", part=part)

    def sig(values):
        return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in values}

    assert sig(proto.graph.input) == {k: ["N", w] for k, w in inputs.items()}
    assert sig(proto.graph.output) == {k: ["N", w] for k, w in outputs.items()}
    weights = m.get_weights()
    for init in proto.graph.initializer:
        if init.name in weights:  # the rest are the logvar clip bounds
            np.testing.assert_array_equal(onnx.numpy_helper.to_array(init), weights[init.name])
    names = {i.name for i in proto.graph.initializer}
    used = {"encoder": ("encoder.", "mu.", "logvar."), "decoder": ("decoder.", "output."),
            "vae": ("encoder.", "mu.", "decoder.", "output.")}[part]
    assert {k for k in weights if k.startswith(used)} <= names


def test_logvar_clip_is_exported(tmp_path):
    """A head bias of +-100 drives logvar past the clamp: ORT clips as vaefast."""
    m = make_model("gaussian", (8,), None)
    w = m.get_weights()
    w["logvar.bias"][:] = [100, -100, 0, 50, -50]
    m.set_weights(w)
    m.to_onnx(tmp_path / "e.onnx", part="encoder")
    _, lv = session(tmp_path / "e.onnx").run(None, {"x": data(4)})
    clipped = np.tile([[30.0, -30.0, 30.0, -30.0]], (4, 1))
    np.testing.assert_array_equal(lv[:, [0, 1, 3, 4]], clipped)
    np.testing.assert_array_equal(m.encode(data(4))[1][:, [0, 1, 3, 4]], clipped)
    exact, bound = oracle(m, "encoder", data(4))["logvar"]
    assert np.all(np.abs(lv - exact) <= bound)


def test_opset_choices(tmp_path):
    m = make_model("bernoulli", (8,), None)
    proto = m.to_onnx(tmp_path / "m.onnx", opset=13)
    assert proto.opset_import[0].version == 13
    assert proto.ir_version == 7  # the oldest with opset 13: old runtimes load it
    out13 = session(tmp_path / "m.onnx").run(None, {"x": data(3)})[0]
    m.to_onnx(tmp_path / "m.onnx")
    np.testing.assert_array_equal(out13, session(tmp_path / "m.onnx").run(None, {"x": data(3)})[0])
    with pytest.raises(ValueError, match="opset must be >= 13"):
        m.to_onnx(tmp_path / "x.onnx", opset=12)
    with pytest.raises(ValueError, match="opset must be <="):
        m.to_onnx(tmp_path / "x.onnx", opset=10_000)
    with pytest.raises(TypeError, match="opset"):
        m.to_onnx(tmp_path / "x.onnx", opset="17")
    with pytest.raises(ValueError, match="part must be one of"):
        m.to_onnx(tmp_path / "x.onnx", part="head")


def test_unknown_likelihood_and_option_are_refused(tmp_path, monkeypatch):
    m = make_model("bernoulli", (8,), None)
    monkeypatch.setattr(m, "likelihood", "poisson")
    with pytest.raises(NotImplementedError, match="'poisson' likelihood"):
        m.to_onnx(tmp_path / "x.onnx")
    monkeypatch.setattr(m, "likelihood", "bernoulli")
    config = m.get_config()
    monkeypatch.setattr(m, "get_config", lambda: {**config, "n_conditions": 3})
    with pytest.raises(NotImplementedError, match="n_conditions=3"):
        m.to_onnx(tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(TypeError, match="model must be a vaefast.VAE"):
        interop.to_onnx(object(), tmp_path / "x.onnx")


def test_cli_export(tmp_path, capsys):
    from vaefast.cli import main

    m = make_model("bernoulli", (16,), None)
    m.save(tmp_path / "model")
    out = tmp_path / "enc.onnx"
    assert main(["export", str(tmp_path / "model"), "--onnx", str(out), "--part", "encoder"]) == 0
    assert "wrote" in capsys.readouterr().out
    mu, lv = session(out).run(None, {"x": data(5)})
    want = oracle(m, "encoder", data(5))
    assert np.all(np.abs(mu - want["mu"][0]) <= want["mu"][1])
    assert np.all(np.abs(lv - want["logvar"][0]) <= want["logvar"][1])
    assert main(["export", str(tmp_path / "model"), "--safetensors",
                 str(tmp_path / "m.st")]) == 0
    np.testing.assert_array_equal(vaefast.VAE.load(tmp_path / "m.st").get_weights()["mu.weight"],
                                  m.get_weights()["mu.weight"])
    assert main(["export", str(tmp_path / "model")]) == 2
    assert "nothing to write" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "model"), "--onnx", str(out), "--opset", "3"]) == 2
    assert "opset must be >= 13" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing"), "--onnx", str(out)]) == 2
    assert "model file not found" in capsys.readouterr().err

