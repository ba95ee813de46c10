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
LIMITS = vaefast._core.LIKELIHOOD_LIMITS


def _sigmoid(out, bound):
    return 1 / (1 + np.exp(-out)), bound + ELEMENTWISE_ATOL  # 1-Lipschitz, expf ulps


def _softmax_mean(out, bound):
    """scVI's normalised expression softmax(out) per row: errors b_j in out
    move entry i by at most s_i·(exp(b_i + max_j b_j) − 1) (log s_i = out_i −
    logsumexp(out) moves by at most b_i + max b), plus float32 ulps of the
    exp, the row sum and the division (a row of 40 features: 48·U·s_i)."""
    top = out.max(axis=1, keepdims=True)
    e = np.exp(out - top)
    mean = e / e.sum(axis=1, keepdims=True)
    spread = bound + bound.max(axis=1, keepdims=True)
    return mean, mean * np.expm1(spread) + 48 * U * mean + 2.0 ** -146


def _count_mean(out, bound):
    """exp(min(out, 30)): an error b in out moves it by at most exp(out + b) − exp(out);
    a few float32 ulps of expf on top (and a few subnormal spacings, 2**-149:
    exp(-100) is a float32 subnormal)."""
    cap = LIMITS["poisson_lograte_max"]
    mean = np.exp(np.minimum(out, cap))
    return mean, np.exp(np.minimum(out + bound, cap)) - mean + 8 * U * mean + 2.0 ** -146


# Float64 mean of p(x|z) (and its error bound) from the output layer, per
# likelihood. Every likelihood the model has is tested: a new one fails here
# until its mean is added (and its entry in vaefast/interop/_likelihoods.py).
MEAN = {"bernoulli": _sigmoid, "gaussian": lambda out, bound: (out, bound),
        "poisson": _count_mean, "negative_binomial": _count_mean,
        "zinb": _softmax_mean, "scvi_nb": _softmax_mean, "scvi_poisson": _softmax_mean}
LIKELIHOODS = tuple(vaefast._spec.likelihoods.REGISTRY)
COUNTS = ("poisson", "negative_binomial", "zinb", "scvi_nb", "scvi_poisson")
# (likelihood, variance, n_conditions): every likelihood plain, then the
# learned variances and conditional models.
KINDS = ([(lik, "unit", 0) for lik in LIKELIHOODS]
         + [("gaussian", "feature", 0), ("gaussian", "sample", 0), ("bernoulli", "unit", 3),
            ("poisson", "unit", 2), ("negative_binomial", "unit", 2),
            ("gaussian", "sample", 3), ("gaussian", "feature", 1)])


def make_model(likelihood, hidden, dec, seed=3, variance="unit", n_conditions=0):
    """A VAE with weights ~N(0, 0.3²) (not the tiny init) so every unit is used."""
    m = vaefast.VAE(D, hidden=hidden, latent_dim=Z, likelihood=likelihood, seed=seed,
                    decoder_hidden=dec, variance=variance, n_conditions=n_conditions)
    rng = np.random.default_rng(seed)
    m.set_weights({k: 0.3 * rng.standard_normal(v.shape) for k, v in m.get_weights().items()})
    return m


def data(n, seed=0, likelihood="bernoulli"):
    rng = np.random.default_rng(seed)
    if likelihood in COUNTS:
        return rng.poisson(3.0, (n, D)).astype(np.float32)
    return rng.random((n, D)).astype(np.float32)


def conditions(m, n, seed=0):
    if not m.n_conditions:
        return None
    return np.random.default_rng(seed + 99).standard_normal((n, m.n_conditions)).astype(np.float32)


class Chain:
    """Float64 forward pass of one float32 implementation and its error bound.

    `a` is the forward pass on |input|, |W|, |b|, `g` the summed g_K of the
    layers passed, `e` an error already in the input (log(1 + x) in
    float32), carried through |W|; one implementation is within
    g·a + e of `h` (to first order; the bound doubles it for the rest)."""

    def __init__(self, x, e=None):
        self.h = x.astype(np.float64)
        self.a = np.abs(self.h)
        self.e = np.zeros_like(self.h) if e is None else e
        self.g = 0.0

    def join(self, c):
        """Append exact columns c ([h | c], as a conditional layer reads)."""
        if c is not None:
            c = c.astype(np.float64)
            self.h, self.a = np.hstack([self.h, c]), np.hstack([self.a, np.abs(c)])
            self.e = np.hstack([self.e, np.zeros_like(c)])
        return self

    def copy(self):
        other = Chain.__new__(Chain)
        other.h, other.a, other.e, other.g = self.h, self.a, self.e, self.g
        return other

    def layers(self, weights, names):
        for name in names:
            W = weights[f"{name}.weight"].astype(np.float64)
            b = weights[f"{name}.bias"].astype(np.float64)
            self.h, self.a = self.h @ W + b, self.a @ np.abs(W) + np.abs(b)
            self.e = self.e @ np.abs(W)
            k = W.shape[0] + 1
            self.g += k * U / (1 - k * U)
            if name.startswith(("encoder.", "decoder.")):
                self.h = np.maximum(self.h, 0)
        return self

    def result(self):
        return self.h, 2 * (self.g * self.a + self.e)  # factor 2: higher-order terms


def enc_layers(m):
    return [f"encoder.{i}" for i in range(len(m.hidden))]


def dec_layers(m):
    return [f"decoder.{i}" for i in range(len(m.decoder_hidden))]


def encoder_input(m, x, c):
    """The encoder's first-layer input: log(1 + x) for the count likelihoods
    (float32 1 + x and logf: each within 2u·(1 + |log(1 + x)|)), then c."""
    if m.likelihood not in COUNTS:
        return Chain(x).join(c)
    y = np.log1p(x.astype(np.float64))
    return Chain(y, 2 * U * (1 + np.abs(y))).join(c)


def oracle(m, part, x, c=None):
    """{output name: (float64 value, one implementation's error bound)}."""
    w = m.get_weights()
    if part == "decoder":
        start = Chain(x).join(c)
    else:
        hidden = encoder_input(m, x, c).layers(w, enc_layers(m))
        mu = hidden.copy().layers(w, ["mu"])
        if part == "encoder":
            lv, bound = hidden.layers(w, ["logvar"]).result()
            return {"mu": mu.result(), "logvar": (np.clip(lv, *vaefast._core.LOGVAR_RANGE), bound)}
        start = mu.join(c)
    body = start.layers(w, dec_layers(m))
    if m.likelihood not in MEAN:
        pytest.fail(f"no float64 mean for the {m.likelihood!r} likelihood in this test")
    want = {"x_mean": MEAN[m.likelihood](*body.copy().layers(w, ["output"]).result())}
    floor = LIMITS["gaussian_logvar_min"]
    if m.variance == "sample":
        lv, bound = body.layers(w, ["output_logvar"]).result()
        want["x_logvar"] = (np.maximum(lv, floor), bound)
    elif m.variance == "feature":
        lv = np.maximum(w["likelihood.logvar"].astype(np.float64), floor)
        want["x_logvar"] = (np.tile(lv, (x.shape[0], 1)), np.zeros((x.shape[0], D)))
    return want


def vaefast_outputs(m, part, x, c=None):
    if part == "encoder":
        mu, lv = m.encode(x, c)
        return {"mu": mu, "logvar": lv}
    z = x if part == "decoder" else m.transform(x, c)
    ours = {"x_mean": m.decode(z, c)}
    floor = np.float32(LIMITS["gaussian_logvar_min"])
    if m.variance == "sample":  # the log-variance half of the output layer
        ours["x_logvar"] = np.maximum(m._decode_raw(z, False, c)[:, D:], floor)
    elif m.variance == "feature":
        ours["x_logvar"] = np.tile(np.maximum(m.get_weights()["likelihood.logvar"], floor),
                                   (x.shape[0], 1))
    return ours


def session(path, threads=1):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("likelihood, variance, n_conditions", KINDS)
@pytest.mark.parametrize("hidden, dec", ARCHS)
@pytest.mark.parametrize("part", ["encoder", "decoder", "vae"])
def test_onnxruntime_matches_vaefast_and_float64(tmp_path, likelihood, variance, n_conditions,
                                                 hidden, dec, part):
    m = make_model(likelihood, hidden, dec, variance=variance, n_conditions=n_conditions)
    path = tmp_path / f"{part}.onnx"
    proto = interop.to_onnx(m, path, part=part)
    onnx.checker.check_model(onnx.load(os.fspath(path)), full_check=True)
    assert proto.opset_import[0].version == 17
    sess = session(path)
    for n in (1, 7, 300):  # the batch dimension is dynamic
        x = (np.random.default_rng(n).standard_normal((n, Z)).astype(np.float32)
             if part == "decoder" else data(n, seed=n, likelihood=likelihood))
        c = conditions(m, n, seed=n)
        feed = {sess.get_inputs()[0].name: x, **({"c": c} if c is not None else {})}
        assert [i.name for i in sess.get_inputs()] == list(feed)
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
        ours = vaefast_outputs(m, part, x, c)
        want = oracle(m, part, x, c)
        assert set(got) == set(ours) == set(want)
        for name, (exact, bound) in want.items():
            assert got[name].shape == ours[name].shape == exact.shape
            assert got[name].dtype == np.float32
            assert np.all(np.abs(got[name] - exact) <= bound), (name, n)
            assert np.all(np.abs(ours[name] - exact) <= bound), (name, n)
            assert np.all(np.abs(got[name] - ours[name]) <= 2 * bound), (name, n)


def test_count_mean_clamp_and_log1p_input_are_exported(tmp_path):
    """An output bias of +-100 drives the log-rate past vaefast's cap of 30:
    the graph's exp(min(out, 30)) clamps where vaefast's decode does, and the
    encoder reads log(1 + x) (fed raw counts up to 1e6)."""
    m = make_model("poisson", (8,), None)
    w = m.get_weights()
    w["output.bias"][:4] = [100, -100, 35, 0]
    m.set_weights(w)
    interop.to_onnx(m, tmp_path / "v.onnx", part="vae")
    x = data(5, likelihood="poisson")
    x[:, 0] = [0, 1, 1e3, 1e5, 1e6]
    got = session(tmp_path / "v.onnx").run(None, {"x": x})[0]
    exact, bound = oracle(m, "vae", x)["x_mean"]
    assert np.all(np.abs(got - exact) <= bound)
    cap = np.float32(np.exp(np.float32(LIMITS["poisson_lograte_max"])))
    np.testing.assert_allclose(got[:, [0, 2]], cap, rtol=4 * U)
    np.testing.assert_allclose(m.reconstruct(x)[:, [0, 2]], cap, rtol=4 * U)


@pytest.mark.parametrize("part, inputs, outputs", [
    ("encoder", {"x": D}, {"mu": Z, "logvar": Z}),
    ("decoder", {"z": Z}, {"x_mean": D}),
    ("vae", {"x": D}, {"x_mean": D}),
])
def test_graph_names_shapes_and_weight_names(tmp_path, part, inputs, outputs):
    m = make_model("bernoulli", (16,), None)
    check_signature(m, tmp_path, part, inputs, outputs)


@pytest.mark.parametrize("part, inputs, outputs", [
    ("encoder", {"x": D, "c": 3}, {"mu": Z, "logvar": Z}),
    ("decoder", {"z": Z, "c": 3}, {"x_mean": D, "x_logvar": D}),
    ("vae", {"x": D, "c": 3}, {"x_mean": D, "x_logvar": D}),
])
@pytest.mark.parametrize("variance", ["sample", "feature"])
def test_conditional_learned_variance_graph_names(tmp_path, part, inputs, outputs, variance):
    m = make_model("gaussian", (16,), None, variance=variance, n_conditions=3)
    check_signature(m, tmp_path, part, inputs, outputs)


def check_signature(m, tmp_path, part, inputs, outputs):
    proto = interop.to_onnx(m, tmp_path / "m.onnx", part=part)

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
    used = {"encoder": ("encoder.", "mu.", "logvar."),
            "decoder": ("decoder.", "output.", "output_logvar.", "likelihood."),
            "vae": ("encoder.", "mu.", "decoder.", "output.", "output_logvar.",
                    "likelihood.")}[part]
    assert {k for k in weights if k.startswith(used)} <= names


def test_logvar_clip_is_exported(tmp_path):
    """A head bias of +-100 drives logvar past the clamp: ORT clips as vaefast."""
    m = make_model("gaussian", (8,), None)
    w = m.get_weights()
    w["logvar.bias"][:] = [100, -100, 0, 50, -50]
    m.set_weights(w)
    interop.to_onnx(m, tmp_path / "e.onnx", part="encoder")
    _, lv = session(tmp_path / "e.onnx").run(None, {"x": data(4)})
    clipped = np.tile([[30.0, -30.0, 30.0, -30.0]], (4, 1))
    np.testing.assert_array_equal(lv[:, [0, 1, 3, 4]], clipped)
    np.testing.assert_array_equal(m.encode(data(4))[1][:, [0, 1, 3, 4]], clipped)
    exact, bound = oracle(m, "encoder", data(4))["logvar"]
    assert np.all(np.abs(lv - exact) <= bound)


def test_opset_choices(tmp_path):
    m = make_model("bernoulli", (8,), None)
    proto = interop.to_onnx(m, tmp_path / "m.onnx", opset=13)
    assert proto.opset_import[0].version == 13
    assert proto.ir_version == 7  # the oldest with opset 13: old runtimes load it
    out13 = session(tmp_path / "m.onnx").run(None, {"x": data(3)})[0]
    interop.to_onnx(m, tmp_path / "m.onnx")
    np.testing.assert_array_equal(out13, session(tmp_path / "m.onnx").run(None, {"x": data(3)})[0])
    with pytest.raises(ValueError, match="opset must be >= 13"):
        interop.to_onnx(m, tmp_path / "x.onnx", opset=12)
    with pytest.raises(ValueError, match="opset must be <="):
        interop.to_onnx(m, tmp_path / "x.onnx", opset=10_000)
    with pytest.raises(TypeError, match="opset"):
        interop.to_onnx(m, tmp_path / "x.onnx", opset="17")
    with pytest.raises(ValueError, match="part must be one of"):
        interop.to_onnx(m, tmp_path / "x.onnx", part="head")


def test_unknown_likelihood_and_option_are_refused(tmp_path, monkeypatch):
    m = make_model("bernoulli", (8,), None)
    config = m.get_config()
    monkeypatch.setattr(m, "get_config", lambda: {**config, "likelihood": "zipf"})
    with pytest.raises(NotImplementedError, match="'zipf' likelihood"):
        interop.to_onnx(m, tmp_path / "x.onnx")
    monkeypatch.setattr(m, "get_config", lambda: {**config, "prior": "vamp"})
    with pytest.raises(NotImplementedError, match="prior='vamp'"):
        interop.to_onnx(m, tmp_path / "x.onnx")
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

