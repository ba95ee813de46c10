"""The VAE with scVI's count likelihoods ("zinb", "scvi_nb", "scvi_poisson").

Oracles: the float64 NumPy twin of the whole model (vaefast.reference,
its count maths written from the formulas with scipy's lgamma/digamma),
central differences of that twin, and an independent PyTorch model whose
ZINB log-density follows scvi-tools' log_zinb_positive formula (written
here; scvi-tools is not imported).

Tolerances: the C model runs in float32. The loss is a sum over D genes of
terms of size ~1-10 and the gradients are sums over the batch of products
of float32 values, so relative errors of ~1e-5 (loss) and ~1e-4 of the
largest entry (gradients) are float32 rounding, not a bug.
"""

import pickle

import numpy as np
import pytest

import vaefast
import vaefast.reference as R

SCVI = ("zinb", "scvi_nb", "scvi_poisson")
D, H, Z = 12, 9, 3


def zinb_counts(n, d, rng, rank=3, depth=60.0, theta=2.0, dropout=0.5):
    """Counts from a known low-rank ZINB model: softmax(Z·W) gene proportions,
    log-normal library sizes, NB(θ) then zero-inflation; ~90% zeros for the
    defaults with d = 200. Rows summing to 0 get one count (no empty cells)."""
    rho = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d))
    p = np.exp(rho - rho.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    lib = depth * np.exp(rng.normal(0, 0.3, size=(n, 1)))
    mu = lib * p
    x = rng.poisson(rng.gamma(theta, mu / theta))
    x[rng.random(x.shape) < dropout] = 0
    empty = x.sum(axis=1) == 0
    x[empty, rng.integers(0, d, empty.sum())] = 1
    return x.astype(np.float32)


def model(lik, seed=1, **kw):
    """A small model with random (not initial) log θ, so θ matters."""
    m = vaefast.VAE(D, hidden=(H,), latent_dim=Z, likelihood=lik, seed=seed, **kw)
    w = m.get_weights()
    if "likelihood.log_theta" in w:
        w["likelihood.log_theta"] = np.random.default_rng(seed).normal(
            0, 0.7, D).astype(np.float32)
        m.set_weights(w)
    return m


def twin_params(m):
    """The model's weights as the twin's float64 params."""
    w = {k: v.astype(np.float64) for k, v in m.get_weights().items()}
    cat = np.concatenate
    out_w, out_b = w["output.weight"], w["output.bias"]
    if "output_pi.weight" in w:
        out_w = cat([out_w, w["output_pi.weight"]], axis=1)
        out_b = cat([out_b, w["output_pi.bias"]])
    params = {"encoder": [(w["encoder.0.weight"], w["encoder.0.bias"])],
              "head": (cat([w["mu.weight"], w["logvar.weight"]], axis=1),
                       cat([w["mu.bias"], w["logvar.bias"]])),
              "decoder": [(w["decoder.0.weight"], w["decoder.0.bias"])],
              "output": (out_w, out_b)}
    if "likelihood.log_theta" in w:
        params["likelihood"] = w["likelihood.log_theta"]
    return params


def twin_grads_named(g):
    """The twin's gradient dict keyed like VAE.get_weights."""
    named = R.to_named({k: g[k] for k in ("encoder", "head", "decoder", "output")})
    W, b = named.pop("output.weight"), named.pop("output.bias")
    named["output.weight"], named["output.bias"] = W[:, :D], b[:D]
    if W.shape[1] == 2 * D:
        named["output_pi.weight"], named["output_pi.bias"] = W[:, D:], b[D:]
    if "likelihood" in g:
        named["likelihood.log_theta"] = g["likelihood"]
    return named


def batch(rng, n=16, d=D):
    X = rng.poisson(1.5, size=(n, d)).astype(np.float32)
    X[rng.random(X.shape) < 0.5] = 0
    X[:, 0] += 1  # every row has a positive total
    return X, rng.standard_normal((n, Z)).astype(np.float32)


def close_grad(got, want, key):
    atol = 1e-4 * max(float(np.abs(want).max()), 1e-12)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=atol, err_msg=key)


@pytest.mark.parametrize("size_factors", [False, True])
@pytest.mark.parametrize("lik", SCVI)
def test_loss_and_grad_match_the_float64_twin(lik, size_factors, on_each_kernel_set):
    rng = np.random.default_rng(3)
    X, eps = batch(rng)
    s = rng.uniform(5, 30, X.shape[0]).astype(np.float32) if size_factors else None
    m = model(lik)
    want_loss, want = R.loss_and_grad(twin_params(m), X.astype(np.float64),
                                      eps.astype(np.float64), lik,
                                      size_factors=None if s is None else s.astype(np.float64))
    want = twin_grads_named(want)
    for isa, (loss, grads) in on_each_kernel_set(
            lambda: m.loss_and_grad(X, eps=eps, size_factors=s)).items():
        assert sorted(grads) == sorted(want)
        np.testing.assert_allclose(loss, want_loss, rtol=2e-5, err_msg=isa)
        for k in want:
            close_grad(grads[k], want[k], f"{isa} {k}")


@pytest.mark.parametrize("lik", SCVI)
def test_twin_gradients_match_central_differences(lik, central_differences):
    pytest.importorskip("scipy")
    rng = np.random.default_rng(4)
    X, eps = batch(rng, n=5)
    X, eps = X.astype(np.float64), eps.astype(np.float64)
    params = twin_params(model(lik))
    _, grads = R.loss_and_grad(params, X, eps, lik)

    def loss_with(path, value):
        p = {k: (list(v) if isinstance(v, list) else v) for k, v in params.items()}
        if path[0] == "likelihood":
            p["likelihood"] = value
        elif path[0] in ("encoder", "decoder"):
            pair = list(p[path[0]][0])
            pair[path[1]] = value
            p[path[0]] = [tuple(pair)]
        else:
            pair = list(p[path[0]])
            pair[path[1]] = value
            p[path[0]] = tuple(pair)
        return R.loss_and_grad(p, X, eps, lik)[0]

    checks = [(("output", 0), params["output"][0], grads["output"][0]),
              (("output", 1), params["output"][1], grads["output"][1]),
              (("encoder", 0), params["encoder"][0][0], grads["encoder"][0][0]),
              (("head", 1), params["head"][1], grads["head"][1])]
    if "likelihood" in params:
        checks.append((("likelihood",), params["likelihood"], grads["likelihood"]))
    for path, value, analytic in checks:
        numeric = central_differences(lambda a: loss_with(path, a), value)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7, err_msg=str(path))


@pytest.mark.parametrize("lik", SCVI)
def test_elbo_matches_the_twin_and_the_registry_density(lik):
    rng = np.random.default_rng(5)
    X, eps = batch(rng, n=40)
    m = model(lik)
    params = twin_params(m)
    cache = R.forward(params, X.astype(np.float64), eps.astype(np.float64), lik)
    nelbo, recon, _ = R.per_sample_loss(cache, X.astype(np.float64), lik, 1.0, params)
    np.testing.assert_allclose(m.elbo(X, eps=eps), -nelbo, rtol=2e-5)
    # the registry's NumPy log-density (its own lgamma) on the twin's output
    lik_rec = vaefast._spec.likelihoods.get(lik)
    log_px = lik_rec.log_px(cache["out"], X, params.get("likelihood"), None, "unit")
    np.testing.assert_allclose(log_px, -recon, rtol=1e-9)


@pytest.mark.parametrize("lik", ["zinb", "scvi_nb"])
def test_seeded_fit_bit_identical_for_1_2_3_threads(lik, threads_setting):
    rng = np.random.default_rng(6)
    X = zinb_counts(1500, 60, rng)  # 1500 x 60: the count kernel and GEMMs use threads
    weights = []
    for t in (1, 2, 3):
        vaefast.set_num_threads(t)
        m = vaefast.VAE(60, hidden=(32,), latent_dim=4, likelihood=lik, seed=3)
        m.fit(X, epochs=2, batch_size=500, progress=False)
        weights.append(m._core.get_buffer(0))
    assert np.array_equal(weights[0], weights[1])
    assert np.array_equal(weights[0], weights[2])


@pytest.mark.parametrize("lik", SCVI)
def test_save_load_round_trip_keeps_the_new_parameters(lik, tmp_path):
    rng = np.random.default_rng(7)
    X, _ = batch(rng, n=40)
    m = model(lik)
    m.fit(X, epochs=2, batch_size=16, progress=False)
    m.save(tmp_path / "m.vae")
    back = vaefast.VAE.load(tmp_path / "m.vae")
    assert back.likelihood == lik and back.get_config() == m.get_config()
    w, wb = m.get_weights(), back.get_weights()
    assert sorted(w) == sorted(wb)
    assert ("output_pi.weight" in w) == (lik == "zinb")
    assert ("likelihood.log_theta" in w) == (lik != "scvi_poisson")
    for k in w:
        np.testing.assert_array_equal(wb[k], w[k], err_msg=k)
    np.testing.assert_array_equal(back.elbo(X, seed=1), m.elbo(X, seed=1))
    unpickled = pickle.loads(pickle.dumps(m))
    for k in w:
        np.testing.assert_array_equal(unpickled.get_weights()[k], w[k], err_msg=k)
    np.testing.assert_array_equal(unpickled.elbo(X, seed=1), m.elbo(X, seed=1))


def test_fit_on_synthetic_zinb_counts_lowers_the_held_out_negative_elbo():
    rng = np.random.default_rng(8)
    X = zinb_counts(1200, 200, rng)
    assert 0.85 < (X == 0).mean() < 0.95
    train, test = X[:1000], X[1000:]
    m = vaefast.VAE(200, hidden=(64,), latent_dim=5, likelihood="zinb", seed=2)
    before = -m.elbo(test, seed=0).mean()
    m.fit(train, epochs=15, batch_size=128, learning_rate=3e-3, progress=False)
    after = -m.elbo(test, seed=0).mean()
    assert np.isfinite(after) and after < before - 0.1 * abs(before), (before, after)
    # the learned dispersion moved from its start (θ = 1) and stays finite
    lt = m.get_weights()["likelihood.log_theta"]
    assert np.isfinite(lt).all() and np.abs(lt).max() > 0.05


@pytest.mark.parametrize("lik", SCVI)
def test_decode_reconstruct_sample_and_normalized_expression(lik):
    rng = np.random.default_rng(9)
    X, _ = batch(rng, n=20)
    m = model(lik)
    mu = m.transform(X)
    raw = m._decode_raw(mu, False)
    rho = raw[:, :D].astype(np.float64)
    soft = np.exp(rho - rho.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(m.get_normalized_expression(X), soft, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(m.get_normalized_expression(X, library_size=1e4), 1e4 * soft,
                               rtol=1e-5)
    # reconstruct: library = the observed total count, or the size factors
    np.testing.assert_allclose(m.reconstruct(X), X.sum(axis=1)[:, None] * soft, rtol=1e-5)
    s = np.full(20, 7.0, np.float32)
    np.testing.assert_allclose(m.reconstruct(X, size_factors=s), 7.0 * soft, rtol=1e-5)
    np.testing.assert_allclose(m.decode(mu), soft, rtol=1e-5, atol=1e-9)
    samp = m.sample(5, seed=0)
    assert samp.shape == (5, D) and np.allclose(samp.sum(axis=1), 1.0, rtol=1e-5)
    ll = m.log_likelihood(X[:4], n_samples=8, seed=0)
    assert ll.shape == (4,) and np.all(ll <= m.elbo(X[:4], seed=0).max() + 50)


def test_importance_weighted_bound_is_at_least_the_elbo_on_average():
    rng = np.random.default_rng(10)
    X, _ = batch(rng, n=30)
    m = model("zinb")
    ll = m.log_likelihood(X, n_samples=200, seed=0)
    elbo = np.mean([m.elbo(X, seed=k) for k in range(20)], axis=0)
    assert ll.mean() >= elbo.mean() - 1e-3


@pytest.mark.parametrize("bad, match", [
    (lambda X: X - 2.0, "non-negative"),
    (lambda X: X + 0.5, "integer counts"),
    (lambda X: np.where(X == X.max(), np.nan, X), "X"),
    (lambda X: np.where(X == X.max(), np.inf, X), "X"),
    (lambda X: np.vstack([X, np.zeros((1, D), np.float32)]), "zero total count"),
])
@pytest.mark.parametrize("method", ["fit", "elbo", "loss_and_grad"])
def test_bad_counts_raise_naming_the_argument(bad, match, method):
    X, _ = batch(np.random.default_rng(11), n=8)
    m = model("zinb")
    call = {"fit": lambda Xb: m.fit(Xb, epochs=1, progress=False),
            "elbo": lambda Xb: m.elbo(Xb, seed=0),
            "loss_and_grad": lambda Xb: m.loss_and_grad(Xb)}[method]
    with pytest.raises(ValueError, match=match):
        call(bad(X))


@pytest.mark.parametrize("lik", SCVI)
def test_only_the_per_gene_dispersion_is_accepted(lik):
    for variance in ("feature", "sample"):
        with pytest.raises(ValueError, match="variance"):
            vaefast.VAE(D, likelihood=lik, variance=variance)


def test_normalized_expression_arguments_are_checked():
    X, _ = batch(np.random.default_rng(12), n=4)
    with pytest.raises(ValueError, match="likelihood"):
        vaefast.VAE(D, likelihood="negative_binomial").get_normalized_expression(X)
    m = model("zinb")
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="library_size"):
            m.get_normalized_expression(X, library_size=bad)


# ------------------------------------------------ PyTorch, written independently
def torch_log_zinb(torch, x, mu, theta, pi, eps=1e-8):
    """log ZINB(x; mean mu, inverse dispersion theta, dropout logits pi), the
    formula of scvi-tools' log_zinb_positive (scvi/distributions/
    _negative_binomial.py), with its eps."""
    sp_neg_pi = torch.nn.functional.softplus(-pi)
    log_theta_mu = torch.log(theta + mu + eps)
    nb0 = -pi + theta * (torch.log(theta + eps) - log_theta_mu)
    zero = torch.nn.functional.softplus(nb0) - sp_neg_pi
    nonzero = (-sp_neg_pi + nb0 + x * (torch.log(mu + eps) - log_theta_mu)
               + torch.lgamma(x + theta) - torch.lgamma(theta) - torch.lgamma(x + 1))
    return torch.where(x < eps, zero, nonzero)


def test_zinb_model_loss_and_gradients_match_pytorch():
    torch = pytest.importorskip("torch", reason="the PyTorch cross-check needs torch")
    rng = np.random.default_rng(13)
    X, eps = batch(rng, n=24)
    m = model("zinb")
    loss, grads = m.loss_and_grad(X, eps=eps)
    w = {k: torch.tensor(v.astype(np.float64), requires_grad=True)
         for k, v in m.get_weights().items()}
    x = torch.tensor(X.astype(np.float64))

    def lin(h, name, relu):
        y = h @ w[f"{name}.weight"] + w[f"{name}.bias"]
        return torch.relu(y) if relu else y

    h = lin(torch.log1p(x), "encoder.0", True)
    mu, logvar = lin(h, "mu", False), lin(h, "logvar", False).clamp(-30, 30)
    z = mu + torch.exp(0.5 * logvar) * torch.tensor(eps.astype(np.float64))
    g = lin(z, "decoder.0", True)
    rho, pi = lin(g, "output", False), lin(g, "output_pi", False)
    px = x.sum(dim=1, keepdim=True) * torch.softmax(rho, dim=1)  # scVI's px_rate
    theta = torch.exp(w["likelihood.log_theta"])
    recon = -torch_log_zinb(torch, x, px, theta, pi).sum(dim=1)
    kl = 0.5 * (mu * mu + torch.exp(logvar) - 1 - logvar).sum(dim=1)
    total = (recon + kl).mean()
    total.backward()
    # the torch formula carries scvi-tools' eps = 1e-8 inside its logs: a
    # relative difference ~1e-8 per term, far below float32's 1e-5 here
    np.testing.assert_allclose(loss, total.item(), rtol=2e-5)
    for k, v in w.items():
        close_grad(grads[k], v.grad.numpy(), k)
