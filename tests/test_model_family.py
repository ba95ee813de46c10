"""Conditional VAEs, learned-variance Gaussians and count likelihoods, whole model.

The C model's loss and every gradient against PyTorch autograd on the same
network built from torch ops and torch.distributions (float64, same weights,
same eps); tolerances as in tests/test_model_torch.py (float32 accumulation
over a few hundred terms: rtol 1e-4, atol 1e-4 × the gradient's largest
entry). Then the API: c= and size_factors= on every method, and their errors.
"""

import numpy as np
import pytest

import vaefast

D, Z, C = 12, 3, 4


def _data(likelihood, rng, n=9):
    if likelihood in ("poisson", "negative_binomial"):
        return rng.poisson(3.0, (n, D)).astype(np.float32)
    if likelihood == "bernoulli":
        return (rng.random((n, D)) < 0.3).astype(np.float32)
    return rng.standard_normal((n, D)).astype(np.float32)


def torch_loss(m, X, eps, c=None, s=None):
    """Batch-mean negative ELBO of m's architecture from torch ops, and grads."""
    import torch
    dist = torch.distributions
    w = {k: torch.tensor(v.astype(np.float64), requires_grad=True)
         for k, v in m.get_weights().items()}
    x = torch.tensor(X.astype(np.float64))
    ct = None if c is None else torch.tensor(c.astype(np.float64))

    def cat(a):
        return a if ct is None else torch.cat([a, ct], dim=1)

    h = cat(torch.log1p(x) if m.likelihood in ("poisson", "negative_binomial") else x)
    for i in range(len(m.hidden)):
        h = torch.relu(h @ w[f"encoder.{i}.weight"] + w[f"encoder.{i}.bias"])
    mu = h @ w["mu.weight"] + w["mu.bias"]
    logvar = torch.clamp(h @ w["logvar.weight"] + w["logvar.bias"], -30.0, 30.0)
    g = cat(mu + torch.exp(0.5 * logvar) * torch.tensor(eps.astype(np.float64)))
    for i in range(len(m.decoder_hidden)):
        g = torch.relu(g @ w[f"decoder.{i}.weight"] + w[f"decoder.{i}.bias"])
    out = g @ w["output.weight"] + w["output.bias"]
    log_s = 0.0 if s is None else torch.log(torch.tensor(s.astype(np.float64)))[:, None]
    if m.likelihood == "poisson":
        logp = dist.Poisson(torch.exp(out + log_s)).log_prob(x)
    elif m.likelihood == "negative_binomial":
        r = w["likelihood.log_theta"][None, :].expand_as(out)
        logp = dist.NegativeBinomial(total_count=torch.exp(r), logits=out + log_s - r).log_prob(x)
    elif m.likelihood == "bernoulli":
        logp = -torch.nn.functional.binary_cross_entropy_with_logits(out, x, reduction="none")
    else:
        lv = {"unit": torch.zeros_like(out),
              "feature": w.get("likelihood.logvar", None),
              "sample": (g @ w["output_logvar.weight"] + w["output_logvar.bias"])
              if m.variance == "sample" else None}[m.variance]
        logp = dist.Normal(out, torch.exp(0.5 * lv)).log_prob(x)
    recon = -logp.sum(1)
    kl = 0.5 * (torch.exp(logvar) + mu ** 2 - 1 - logvar).sum(1)
    loss = (recon + m.beta * kl).mean()
    loss.backward()
    return loss.item(), {k: v.grad.numpy() for k, v in w.items()}


CASES = [
    dict(likelihood="poisson"),
    dict(likelihood="negative_binomial"),
    dict(likelihood="gaussian", variance="feature"),
    dict(likelihood="gaussian", variance="sample"),
    dict(likelihood="bernoulli", n_conditions=C),
    dict(likelihood="negative_binomial", n_conditions=C),
    dict(likelihood="gaussian", variance="sample", n_conditions=C),
]


@pytest.mark.parametrize("kwargs", CASES, ids=lambda k: "-".join(map(str, k.values())))
@pytest.mark.parametrize("hidden, dec", [((16,), None), ((16, 8), (10,)), ((), ())])
def test_loss_and_every_gradient_match_torch(kwargs, hidden, dec):
    pytest.importorskip("torch")
    m = vaefast.VAE(D, hidden=hidden, latent_dim=Z, beta=0.7, seed=2, decoder_hidden=dec,
                    **kwargs)
    rng = np.random.default_rng(0)
    w = m.get_weights()  # move the per-feature parameters off their init of 0
    for k in ("likelihood.log_theta", "likelihood.logvar"):
        if k in w:
            w[k] = rng.uniform(-1, 1, D).astype(np.float32)
    m.set_weights(w)
    X = _data(m.likelihood, rng)
    eps = rng.standard_normal((9, Z)).astype(np.float32)
    c = np.eye(C, dtype=np.float32)[rng.integers(0, C, 9)] if m.n_conditions else None
    s = rng.uniform(0.5, 2.0, 9).astype(np.float32) if m.likelihood in ("poisson", "negative_binomial") else None
    loss, grads = m.loss_and_grad(X, eps=eps, c=c, size_factors=s)
    want_loss, want = torch_loss(m, X, eps, c, s)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    assert set(grads) == set(want)
    for k in want:
        atol = 1e-4 * max(float(np.abs(want[k]).max()), 1e-12)
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-4, atol=atol, err_msg=k)


@pytest.mark.parametrize("kwargs", CASES, ids=lambda k: "-".join(map(str, k.values())))
def test_training_lowers_the_loss_and_elbo_matches_training_loss(kwargs):
    rng = np.random.default_rng(1)
    X = _data(kwargs["likelihood"], rng, n=256)
    c = np.eye(C, dtype=np.float32)[rng.integers(0, C, 256)] if "n_conditions" in kwargs else None
    m = vaefast.VAE(D, hidden=(32,), latent_dim=Z, seed=0, **kwargs)
    h = m.fit(X, c=c, epochs=8, batch_size=32, learning_rate=3e-3, progress=False,
              validation_data=(X, c))
    assert h.history["loss"][-1] < h.history["loss"][0]
    # the float64 evaluation and the C loss are the same density: with the
    # same eps, -ELBO equals loss_and_grad's loss.
    eps = rng.standard_normal((256, Z)).astype(np.float32)
    loss, _ = m.loss_and_grad(X, eps=eps, c=c)
    np.testing.assert_allclose(-m.elbo(X, c=c, eps=eps).mean(), loss, rtol=2e-5)
    ll = m.log_likelihood(X[:20], n_samples=20, seed=0, c=None if c is None else c[:20])
    assert np.isfinite(ll).all()
    assert np.mean(ll) >= np.mean(m.elbo(X[:20], seed=0, c=None if c is None else c[:20])) - 1.0


def test_conditions_are_required_exactly_for_a_conditional_model():
    rng = np.random.default_rng(2)
    X = _data("bernoulli", rng, 10)
    c = np.eye(C, dtype=np.float32)[rng.integers(0, C, 10)]
    cond = vaefast.VAE(D, hidden=(8,), latent_dim=Z, n_conditions=C)
    plain = vaefast.VAE(D, hidden=(8,), latent_dim=Z)
    Zs = np.zeros((10, Z), np.float32)
    calls = [("fit", (X,), {"epochs": 1, "progress": False}), ("encode", (X,), {}),
             ("transform", (X,), {}), ("decode", (Zs,), {}), ("reconstruct", (X,), {}),
             ("elbo", (X,), {}), ("log_likelihood", (X,), {"n_samples": 2}),
             ("loss_and_grad", (X,), {}), ("sample", (10,), {})]
    for name, args, kw in calls:
        with pytest.raises(ValueError, match="c is required"):
            getattr(cond, name)(*args, **kw)
        with pytest.raises(ValueError, match="c was given"):
            getattr(plain, name)(*args, c=c, **kw)
        getattr(cond, name)(*args, c=c, **kw)  # and with c it runs
    with pytest.raises(ValueError, match=r"c must have shape \(10, 4\)"):
        cond.encode(X, c[:, :3])


def test_size_factors_scale_the_count_mean():
    rng = np.random.default_rng(3)
    X = _data("poisson", rng, 10)
    m = vaefast.VAE(D, hidden=(8,), latent_dim=Z, likelihood="poisson", seed=1)
    s = rng.uniform(0.5, 3, 10).astype(np.float32)
    mu = m.transform(X)
    np.testing.assert_allclose(m.decode(mu, size_factors=s), s[:, None] * m.decode(mu),
                               rtol=2 * 2.0**-24)
    with pytest.raises(ValueError, match="size_factors"):
        vaefast.VAE(D, likelihood="gaussian").elbo(X, size_factors=s)
    with pytest.raises(ValueError, match="non-negative counts"):
        m.fit(-X, epochs=1)
    with pytest.raises(ValueError, match="variance"):
        vaefast.VAE(D, likelihood="poisson", variance="feature")


def test_conditional_model_uses_its_conditions():
    # One-hot class → the decoder must learn class-specific outputs: samples
    # with condition k resemble class k's mean more than other classes'.
    rng = np.random.default_rng(4)
    protos = (rng.random((3, D)) < 0.5).astype(np.float32)
    y = rng.integers(0, 3, 600)
    X = np.where(rng.random((600, D)) < 0.1, 1 - protos[y], protos[y]).astype(np.float32)
    c = np.eye(3, dtype=np.float32)[y]
    m = vaefast.VAE(D, hidden=(32,), latent_dim=2, n_conditions=3, seed=0)
    m.fit(X, c=c, epochs=30, batch_size=32, learning_rate=3e-3, progress=False)
    for k in range(3):
        samp = m.sample(50, seed=k, c=np.tile(np.eye(3, dtype=np.float32)[k], (50, 1)))
        dists = [np.abs(samp - protos[j]).mean() for j in range(3)]
        assert int(np.argmin(dists)) == k


@pytest.mark.parametrize("kwargs", [dict(likelihood="negative_binomial", n_conditions=C),
                                    dict(likelihood="gaussian", variance="feature")])
def test_training_bit_identical_across_thread_counts(kwargs):
    # the per-feature parameters' gradient is a column sum in row order, and the
    # kernels give whole row blocks to threads: no dependence on the thread count
    rng = np.random.default_rng(5)
    X = _data(kwargs["likelihood"], rng, n=3000)  # 3000 x 12: the kernels use threads
    c = np.eye(C, dtype=np.float32)[rng.integers(0, C, 3000)] if "n_conditions" in kwargs else None
    old = vaefast.get_num_threads()
    weights = []
    try:
        for t in (1, 2):
            vaefast.set_num_threads(t)
            m = vaefast.VAE(D, hidden=(64,), latent_dim=Z, seed=3, **kwargs)
            m.fit(X, c=c, epochs=2, batch_size=3000, progress=False)  # one big batch
            weights.append(m._core.get_buffer(0))
    finally:
        vaefast.set_num_threads(old)
    assert np.array_equal(weights[0], weights[1])


def test_model_module_does_not_import_the_test_oracle(run_python):
    r = run_python("import sys, vaefast; vaefast.VAE(4).fit([[0.5] * 4] * 3, epochs=1, "
                   "progress=False); print('vaefast.reference' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
