"""PyTorch out (to_torch) and in (from_torch).

Oracles: the exported module run by torch in float64 on the float32
weights (a different implementation: torch's matmul and autograd-free
ops), and the PyTorch examples VAE trained by torch itself. Tolerances as in
test_model_torch.py: float32 accumulation over at most a few hundred terms
is ~1e-6 relative (worst case K·u ≈ 5e-5 for K = 784), so outputs agree to
rtol 1e-4 with atol 1e-5 × the largest entry, and the ELBO (a sum of
hundreds of such terms in float64) to rtol 1e-5. Weight round trips copy
float32 values and must be exact.
"""

import numpy as np
import pytest

import vaefast
from vaefast import interop

torch = pytest.importorskip("torch", reason="the PyTorch bridge needs torch")
nn = torch.nn

D, Z = 30, 4
ARCHS = [((), ()), ((16,), None), ((24, 12), (10,))]


def make_model(likelihood, hidden, dec, beta=1.0, seed=5, variance="unit", n_conditions=0):
    m = vaefast.VAE(D, hidden=hidden, latent_dim=Z, likelihood=likelihood, beta=beta,
                    seed=seed, decoder_hidden=dec, variance=variance,
                    n_conditions=n_conditions)
    rng = np.random.default_rng(seed)
    m.set_weights({k: 0.3 * rng.standard_normal(v.shape) for k, v in m.get_weights().items()})
    return m


# Data each likelihood accepts. Every likelihood the model has is tested: a
# new one fails here until it has an entry (and one in interop/_likelihoods).
DATA = {"bernoulli": lambda rng, n: rng.random((n, D)) < 0.4,
        "gaussian": lambda rng, n: rng.standard_normal((n, D)),
        "poisson": lambda rng, n: rng.poisson(3.0, (n, D)),
        "negative_binomial": lambda rng, n: rng.negative_binomial(2, 0.3, (n, D)),
        # scVI's: about half zeros, and no empty row (the observed library is > 0)
        **{lik: lambda rng, n: rng.negative_binomial(1, 0.4, (n, D)) + np.eye(n, D, dtype=int)
           for lik in ("zinb", "scvi_nb", "scvi_poisson")}}
LIKELIHOODS = tuple(vaefast._spec.likelihoods.REGISTRY)
COUNTS = ("poisson", "negative_binomial", "zinb", "scvi_nb", "scvi_poisson")
# (likelihood, variance, n_conditions): every likelihood plain, then the
# learned variances and conditional models.
KINDS = ([(lik, "unit", 0) for lik in LIKELIHOODS]
         + [("gaussian", "feature", 0), ("gaussian", "sample", 0), ("bernoulli", "unit", 3),
            ("poisson", "unit", 2), ("negative_binomial", "unit", 2),
            ("gaussian", "sample", 3), ("gaussian", "feature", 1)])


def make_data(likelihood, n=17, seed=0):
    if likelihood not in DATA:
        pytest.fail(f"no test data for the {likelihood!r} likelihood in this test")
    return DATA[likelihood](np.random.default_rng(seed), n).astype(np.float32)


def side_inputs(m, n, seed=0):
    """(c, size_factors) for n rows of model m: None where m takes none."""
    rng = np.random.default_rng(seed + 50)
    c = (rng.standard_normal((n, m.n_conditions)).astype(np.float32)
         if m.n_conditions else None)
    s = rng.uniform(0.5, 2.0, n).astype(np.float32) if m.likelihood in COUNTS else None
    return c, s


def t64(a):
    return None if a is None else torch.from_numpy(np.asarray(a, dtype=np.float64))


def assert_close(got, want, err_msg=""):
    want = np.asarray(want)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(np.abs(want).max()),
                               err_msg=err_msg)


def assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert set(wa) == set(wb)
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


# ------------------------------------------------------------ to_torch
@pytest.mark.parametrize("likelihood, variance, n_conditions", KINDS)
@pytest.mark.parametrize("hidden, dec", ARCHS)
def test_to_torch_encode_decode_and_elbo_match(likelihood, variance, n_conditions, hidden, dec):
    m = make_model(likelihood, hidden, dec, beta=0.6, variance=variance,
                   n_conditions=n_conditions)
    X = make_data(likelihood)
    c, s = side_inputs(m, X.shape[0])
    module = interop.to_torch(m).double()
    assert isinstance(module, nn.Module)
    with torch.no_grad():
        mu, lv = (t.numpy() for t in module.encode(t64(X), t64(c)))
        want_mu, want_lv = m.encode(X, c)
        assert_close(want_mu, mu, "mu")
        assert_close(want_lv, lv, "logvar")
        z = np.random.default_rng(1).standard_normal((X.shape[0], Z)).astype(np.float32)
        assert_close(m.decode(z, c, s), module.decode(t64(z), t64(c), t64(s)).numpy(), "decode")
        assert_close(m.reconstruct(X, c, s), module.reconstruct(t64(X), t64(c), t64(s)).numpy(),
                     "reconstruct")
        # The ELBO with vaefast's own training noise (Philox at (seed, step)) ...
        eps = vaefast.ops.reparameterization_noise(m.seed, m.step_, (X.shape[0], Z))
        loss, _ = m.loss_and_grad(X, c=c, size_factors=s)  # the core draws the same eps
        np.testing.assert_allclose(loss, -module(t64(X), t64(eps), t64(c), t64(s)).mean().item(),
                                   rtol=1e-5)
        # ... and per sample with the NumPy noise VAE.elbo draws from its seed.
        eps = np.random.default_rng(7).standard_normal((X.shape[0], Z)).astype(np.float32)
        want = module(t64(X), t64(eps), t64(c), t64(s)).numpy()
        np.testing.assert_allclose(m.elbo(X, seed=7, c=c, size_factors=s), want, rtol=1e-5)
        np.testing.assert_allclose(m.elbo(X, c=c, size_factors=s, eps=eps), want, rtol=1e-5)


@pytest.mark.parametrize("likelihood, variance, n_conditions", KINDS)
def test_to_torch_autograd_matches_vaefast_gradients(likelihood, variance, n_conditions):
    """Training in PyTorch goes where vaefast's would: torch autograd of the
    module's batch-mean negative ELBO (float64) equals loss_and_grad's
    gradients for every parameter, the likelihood's own included."""
    m = make_model(likelihood, (16,), (12,), beta=0.6, variance=variance,
                   n_conditions=n_conditions)
    check_gradients(m, make_data(likelihood, n=23, seed=3))


@pytest.mark.parametrize("likelihood, variance, key, values", [
    ("poisson", "unit", "output.bias", [40.0, 31.0, 29.0]),  # past the log-rate cap 30
    ("negative_binomial", "unit", "likelihood.log_theta", [25.0, -25.0, 19.0]),  # [-20, 20]
    ("zinb", "unit", "likelihood.log_theta", [25.0, -25.0, 19.0]),
    ("gaussian", "feature", "likelihood.logvar", [-12.0, -11.0, -9.0]),  # floor -10
])
def test_to_torch_gradients_at_the_clamps_follow_vaefast(likelihood, variance, key, values):
    """Parameters pushed past vaefast's clamps: the module's gradient there is
    the kernels' (straight through the Poisson cap; only back inside for
    log θ and the log-variance floor), not torch.clamp's zero."""
    m = make_model(likelihood, (16,), (12,), beta=0.6, variance=variance)
    w = m.get_weights()
    w[key][:len(values)] = values
    m.set_weights(w)
    check_gradients(m, make_data(likelihood, n=23, seed=3))


def check_gradients(m, X):
    """loss_and_grad against torch autograd of the to_torch module (float64)."""
    from vaefast.interop.torch_export import vaefast_weights

    c, s = side_inputs(m, X.shape[0], seed=3)
    eps = np.random.default_rng(8).standard_normal((X.shape[0], Z)).astype(np.float32)
    loss, grads = m.loss_and_grad(X, eps=eps, c=c, size_factors=s)
    module = interop.to_torch(m).double()
    torch_loss = -module(t64(X), t64(eps), t64(c), t64(s)).mean()
    torch_loss.backward()
    np.testing.assert_allclose(loss, torch_loss.item(), rtol=1e-5)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.grad)  # read the gradients back under vaefast's names
    want = vaefast_weights(module)
    assert set(want) == set(grads)
    for k in grads:
        assert_close(grads[k], want[k], k)


@pytest.mark.parametrize("likelihood, variance, n_conditions", KINDS)
@pytest.mark.parametrize("hidden, dec", ARCHS)
def test_round_trip_vaefast_torch_vaefast_is_exact(likelihood, variance, n_conditions, hidden,
                                                   dec):
    m = make_model(likelihood, hidden, dec, beta=0.25, variance=variance,
                   n_conditions=n_conditions)
    module = interop.to_torch(m)
    back = interop.from_torch(module)
    assert back.get_config() == {**m.get_config(), "seed": 0}
    assert_same_weights(m, back)
    state = module.state_dict()
    if n_conditions or len(module.heads) > 1:  # the layouts a state_dict cannot say
        with pytest.raises(ValueError, match="only from a to_torch module"):
            interop.from_torch(state, likelihood=likelihood)
    else:
        back = interop.from_torch(state, likelihood=likelihood, beta=0.25)
        assert back.get_config() == {**m.get_config(), "seed": 0}
        assert_same_weights(m, back)
    # and torch -> vaefast -> torch gives the same tensors
    again = interop.to_torch(back).state_dict()
    for k, v in state.items():
        assert torch.equal(v, again[k]), k


def test_to_torch_refuses_unknown_likelihood(monkeypatch):
    m = make_model("bernoulli", (8,), None)
    config = m.get_config()
    monkeypatch.setattr(m, "get_config", lambda: {**config, "likelihood": "zipf"})
    with pytest.raises(NotImplementedError, match="'zipf' likelihood"):
        interop.to_torch(m)


def test_conditions_and_likelihood_parameters_are_checked():
    m = make_model("negative_binomial", (8,), None, n_conditions=2)
    module = interop.to_torch(m)
    X = torch.from_numpy(make_data("negative_binomial", n=3))
    with pytest.raises(ValueError, match="c is required"):
        module.encode(X)
    with pytest.raises(ValueError, match=r"c must have shape \(3, 2\)"):
        module(X, c=torch.zeros(3, 5))
    with pytest.raises(ValueError, match="c was given but this model is unconditional"):
        interop.to_torch(make_model("poisson", (8,), None)).encode(X, torch.zeros(3, 1))
    with pytest.raises(ValueError, match="contradicts the source: a to_torch module of a "
                                         "'negative_binomial' model"):
        interop.from_torch(module, likelihood="poisson")
    state = interop.to_torch(make_model("negative_binomial", (8,), None)).state_dict()
    assert "likelihood.log_theta" in state
    with pytest.raises(ValueError, match="'likelihood.log_theta' does not belong to a "
                                         "likelihood='poisson' model"):
        interop.from_torch(state, likelihood="poisson")
    del state["likelihood.log_theta"]
    with pytest.raises(ValueError, match="likelihood='negative_binomial' needs its per-feature "
                                         "parameters 'likelihood.log_theta'"):
        interop.from_torch(state, likelihood="negative_binomial")
    with pytest.raises(ValueError, match="likelihood must be one of"):
        interop.from_torch(state, likelihood="zipf")


# ---------------------------------------------- the PyTorch examples VAE
class ExamplesVAE(nn.Module):
    """The layout of pytorch/examples' vae/main.py: 784-400-20, a sigmoid
    decoder, BCE (summed) + KL loss."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = torch.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def decode(self, z):
        return torch.sigmoid(self.fc4(torch.relu(self.fc3(z))))

    def forward(self, x, eps):
        mu, logvar = self.encode(x)
        return self.decode(mu + torch.exp(0.5 * logvar) * eps), mu, logvar


def examples_loss(recon, mu, logvar, x):
    """Per-sample negative ELBO as in the examples (BCE on probabilities)."""
    bce = nn.functional.binary_cross_entropy(recon, x, reduction="none").sum(1)
    return bce - 0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def test_trained_pytorch_examples_vae_imports_with_its_elbo():
    torch.manual_seed(0)
    net = ExamplesVAE()
    rng = np.random.default_rng(0)
    X = (rng.random((96, 784)) < 0.3).astype(np.float32)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for step in range(6):  # a few steps in torch, its own noise
        xb = torch.from_numpy(X[16 * step:16 * step + 16])
        opt.zero_grad()
        examples_loss(*net(xb, torch.randn(16, 20)), xb).sum().backward()
        opt.step()
    for source in (net, net.state_dict()):
        m = interop.from_torch(source)
        assert (m.n_features, m.hidden, m.latent_dim, m.decoder_hidden, m.likelihood) == \
            (784, (400,), 20, (400,), "bernoulli")
        net64 = ExamplesVAE().double()
        net64.load_state_dict({k: v.double() for k, v in net.state_dict().items()})
        eps = rng.standard_normal((32, 20)).astype(np.float32)
        with torch.no_grad():
            want = examples_loss(*net64(t64(X[:32]), t64(eps)), t64(X[:32])).numpy()
        loss, _ = m.loss_and_grad(X[:32], eps=eps)
        np.testing.assert_allclose(loss, want.mean(), rtol=1e-5)
        eps = np.random.default_rng(4).standard_normal((32, 20)).astype(np.float32)
        with torch.no_grad():
            want = examples_loss(*net64(t64(X[:32]), t64(eps)), t64(X[:32])).numpy()
        np.testing.assert_allclose(m.elbo(X[:32], seed=4), -want, rtol=1e-5)
        with torch.no_grad():
            assert_close(m.encode(X[:8])[0], net64.encode(t64(X[:8]))[0].numpy(), "mu")


# ------------------------------------------------- nn.Sequential layouts
def run_torch(enc, heads, dec, X):
    """(mu, logvar, decoder mean of mu) of a Sequential layout, in float64."""
    with torch.no_grad():
        h = enc.double()(t64(X))
        if heads is None:
            mu, lv = h.chunk(2, dim=1)
        else:
            mu, lv = heads[0].double()(h), heads[1].double()(h)
        out = dec.double()(mu)
    return mu.numpy(), lv.numpy(), out.numpy()


def check_matches(m, enc, heads, dec, X):
    """vaefast's encode and reconstruct against the torch modules."""
    mu, lv, out = run_torch(enc, heads, dec, X)
    assert_close(m.encode(X)[0], mu, "mu")
    assert_close(m.encode(X)[1], lv, "logvar")
    assert_close(m.reconstruct(X), out, "reconstruction")


class Separate(nn.Module):
    def __init__(self, mu_name, lv_name, sigmoid):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(D, 20), nn.ReLU(), nn.Linear(20, 12), nn.ReLU())
        setattr(self, mu_name, nn.Linear(12, Z))
        setattr(self, lv_name, nn.Linear(12, Z))
        self.decoder = nn.Sequential(nn.Linear(Z, 14), nn.ReLU(), nn.Linear(14, D),
                                     *([nn.Sigmoid()] if sigmoid else []))


class Joined(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(D, 20), nn.ReLU(), nn.Linear(20, 2 * Z))
        self.decoder = nn.Sequential(nn.Linear(Z, 14), nn.ReLU(), nn.Linear(14, D))


@pytest.mark.parametrize("heads", [("mu", "logvar"), ("fc_mu", "fc_logvar"), ("fc_mu", "fc_var")])
def test_sequential_with_separate_heads(heads):
    torch.manual_seed(1)
    net = Separate(*heads, sigmoid=True)
    X = make_data("bernoulli")
    m = interop.from_torch(net)  # the final Sigmoid says Bernoulli
    assert (m.hidden, m.latent_dim, m.decoder_hidden, m.likelihood) == \
        ((20, 12), Z, (14,), "bernoulli")
    check_matches(m, net.encoder, (getattr(net, heads[0]), getattr(net, heads[1])),
                  net.decoder, X)
    m2 = interop.from_torch((net.encoder, getattr(net, heads[0]), getattr(net, heads[1]),
                             net.decoder))
    assert_same_weights(m, m2)
    m3 = interop.from_torch(net.state_dict(), likelihood="bernoulli")
    assert_same_weights(m, m3)


def test_sequential_with_joined_head_and_gaussian():
    torch.manual_seed(2)
    net = Joined()
    X = make_data("gaussian")
    with pytest.raises(ValueError, match="likelihood must be given"):
        interop.from_torch(net)
    m = interop.from_torch(net, likelihood="gaussian", beta=0.5, seed=9)
    assert (m.hidden, m.latent_dim, m.decoder_hidden, m.beta, m.seed) == ((20,), Z, (14,), 0.5, 9)
    check_matches(m, net.encoder, None, net.decoder, X)
    assert_same_weights(m, interop.from_torch((net.encoder, net.decoder), likelihood="gaussian"))
    assert_same_weights(m, interop.from_torch(net.state_dict(), likelihood="gaussian"))


def test_state_dict_of_numpy_arrays_needs_no_module():
    torch.manual_seed(3)
    net = ExamplesVAE()
    state = {k: v.numpy().astype(np.float64) for k, v in net.state_dict().items()}
    assert_same_weights(interop.from_torch(state), interop.from_torch(net))


def test_bias_free_linear_is_a_zero_bias():
    torch.manual_seed(4)
    enc = nn.Sequential(nn.Linear(D, 10, bias=False), nn.ReLU(), nn.Linear(10, 2 * Z))
    dec = nn.Sequential(nn.Linear(Z, D))
    m = interop.from_torch((enc, dec), likelihood="gaussian")
    np.testing.assert_array_equal(m.get_weights()["encoder.0.bias"], np.zeros(10, np.float32))
    check_matches(m, enc, None, dec, make_data("gaussian"))


# -------------------------------------------------------------- errors
def seq(*layers):
    return nn.Sequential(*layers)


@pytest.mark.parametrize("source, likelihood, message", [
    ((seq(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, 2 * Z)), seq(nn.Linear(Z, D))), "gaussian",
     r"source\[0\]\[1\] is Tanh"),
    ((seq(nn.Linear(D, 8), nn.ReLU(), nn.Linear(8, 2 * Z)), seq(nn.Linear(Z, D), nn.Dropout())),
     "gaussian", r"source\[1\]\[1\] is Dropout"),
    ((seq(nn.Linear(D, 8), nn.Linear(8, 2 * Z)), seq(nn.Linear(Z, D))), "gaussian",
     r"source\[0\]\[0\] \(Linear\) is not followed by a ReLU"),
    ((seq(nn.ReLU(), nn.Linear(D, 2 * Z)), seq(nn.Linear(Z, D))), "gaussian",
     r"source\[0\]\[0\] is a ReLU that does not follow a Linear"),
    ((seq(nn.Linear(D, 8), nn.ReLU(), nn.Linear(8, 2 * Z), nn.ReLU()), seq(nn.Linear(Z, D))),
     "gaussian", r"source\[0\]\[2\] is followed by a ReLU"),
    ((seq(nn.Linear(D, 8), nn.ReLU(), nn.Linear(8, 2 * Z + 1)), seq(nn.Linear(Z, D))),
     "gaussian", r"source\[0\]\[2\] has 9 outputs"),
    ((seq(nn.Linear(D, 8), nn.ReLU(), nn.Linear(8, 2 * Z)), seq(nn.Linear(Z + 1, D))),
     "gaussian", r"2·4, but the decoder takes 5"),
    ((seq(nn.Linear(D, 8), nn.ReLU(), nn.Linear(9, 2 * Z)), seq(nn.Linear(Z, D))), "gaussian",
     r"source\[0\]\[2\]\[:4\] \(mu\) takes 9 inputs but source\[0\]\[0\] gives 8"),
    ((seq(nn.Linear(D, 2 * Z)), seq(nn.Linear(Z, D + 1))), "gaussian",
     r"source\[1\]\[0\] gives 31 outputs but the encoder takes 30"),
    ((seq(nn.Linear(D, 2 * Z)), seq(nn.Linear(Z, D), nn.ReLU())), "gaussian",
     r"source\[1\]\[0\] is followed by a ReLU"),
    ((seq(nn.Linear(D, 2 * Z)), seq(nn.Linear(Z, D), nn.Sigmoid())), "gaussian",
     r"likelihood='gaussian' contradicts the source: source\[1\] ends in Sigmoid"),
    ((seq(nn.Linear(D, 2 * Z)), nn.Linear(Z, D)), "gaussian",
     r"source\[1\] is Linear: expected a torch.nn.Sequential"),
    ((seq(nn.Linear(D, 2 * Z)), seq(nn.Conv1d(1, 1, 3))), "gaussian", r"source\[1\]\[0\] is Conv1d"),
    ((seq(nn.Linear(D, 2 * Z)),), "gaussian", "must be \\(encoder, decoder\\)"),
    ((seq(nn.Linear(D, 8), nn.ReLU()), nn.Linear(8, Z), nn.Linear(8, Z + 1), seq(nn.Linear(Z, D))),
     "gaussian", r"source\[1\] gives 4 outputs but source\[2\] gives 5"),
])
def test_unsupported_structures_name_the_layer(source, likelihood, message):
    with pytest.raises((ValueError, TypeError), match=message):
        interop.from_torch(source, likelihood=likelihood)


def test_unsupported_modules_and_state_dicts():
    with pytest.raises(ValueError, match="has neither the PyTorch examples VAE layout"):
        interop.from_torch(nn.Linear(3, 3))
    net = ExamplesVAE()
    state = dict(net.state_dict())
    state["fc5.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="state_dict key 'fc5.weight' belongs to no layer"):
        interop.from_torch(state)
    state = {k: v for k, v in net.state_dict().items() if k != "fc4.weight"}
    with pytest.raises(ValueError, match="neither the PyTorch examples VAE keys"):
        interop.from_torch(state)
    state = dict(net.state_dict())
    state["fc1.weight"] = torch.zeros(400, 784, dtype=torch.int64)
    with pytest.raises(TypeError, match="fc1.weight must hold floating-point numbers"):
        interop.from_torch(state)
    state["fc1.weight"] = torch.zeros(400, 784)
    state["fc1.bias"] = torch.zeros(401)
    with pytest.raises(ValueError, match="fc1: bias has 401 entries"):
        interop.from_torch(state)
    state = dict(net.state_dict())
    state["fc1.weight"] = state["fc1.weight"].clone()
    state["fc1.weight"][0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        interop.from_torch(state)
    with pytest.raises(TypeError, match="source must be a torch.nn.Module"):
        interop.from_torch(42)
    with pytest.raises(ValueError, match="contradicts the source"):
        interop.from_torch(net, likelihood="gaussian")
