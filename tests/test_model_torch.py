"""The C model against PyTorch autograd: same net, same weights, same eps.

Torch runs in float64 on the float32 weights, so it is an independent oracle
(different code, automatic differentiation). Tolerances as in test_model.py:
float32 accumulation over a few hundred terms gives relative errors ~1e-6;
rtol 1e-4 with atol 1e-4 × the gradient's largest entry.
"""

import numpy as np
import pytest

import vaefast

torch = pytest.importorskip("torch")

D, Z = 20, 4


def torch_loss(weights, X, eps, likelihood, beta, n_enc, n_dec):
    """Batch-mean negative ELBO of the vaefast architecture, built from torch ops."""
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in weights.items()}
    x = torch.tensor(X, dtype=torch.float64)
    h = x
    for i in range(n_enc):
        h = torch.relu(h @ t[f"encoder.{i}.weight"] + t[f"encoder.{i}.bias"])
    mu = h @ t["mu.weight"] + t["mu.bias"]
    logvar = torch.clamp(h @ t["logvar.weight"] + t["logvar.bias"], -30.0, 30.0)
    z = mu + torch.exp(0.5 * logvar) * torch.tensor(eps, dtype=torch.float64)
    g = z
    for i in range(n_dec):
        g = torch.relu(g @ t[f"decoder.{i}.weight"] + t[f"decoder.{i}.bias"])
    out = g @ t["output.weight"] + t["output.bias"]
    if likelihood == "bernoulli":
        recon = torch.nn.functional.binary_cross_entropy_with_logits(
            out, x, reduction="none").sum(1)
    else:
        recon = (0.5 * (out - x) ** 2 + 0.5 * np.log(2 * np.pi)).sum(1)
    kl = 0.5 * (torch.exp(logvar) + mu ** 2 - 1 - logvar).sum(1)
    loss = (recon + beta * kl).mean()
    loss.backward()
    return loss.item(), {k: v.grad.numpy() for k, v in t.items()}


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("hidden, dec", [((16,), None), ((16, 8), (12,)), ((), ())])
def test_loss_and_every_gradient_match_torch(likelihood, hidden, dec):
    m = vaefast.VAE(D, hidden=hidden, latent_dim=Z, likelihood=likelihood, beta=0.7,
                    seed=2, decoder_hidden=dec)
    rng = np.random.default_rng(0)
    X = ((rng.random((11, D)) < 0.3).astype(np.float32) if likelihood == "bernoulli"
         else rng.standard_normal((11, D)).astype(np.float32))
    eps = rng.standard_normal((11, Z)).astype(np.float32)
    loss, grads = m.loss_and_grad(X, eps=eps)
    want_loss, want = torch_loss(m.get_weights(), X, eps, likelihood, 0.7,
                                 len(m.hidden), len(m.decoder_hidden))
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    assert set(grads) == set(want)
    for k in want:
        atol = 1e-4 * max(float(np.abs(want[k]).max()), 1e-12)
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-4, atol=atol, err_msg=k)


def test_adam_step_matches_torch_optimizer():
    """One fit step (batch = all rows, no shuffling) equals torch.optim.Adam
    on the autograd gradient with the core's eps; the update is lr·O(1), so
    atol 1e-3·lr allows a 0.1% error per step where g ≈ 0."""
    from vaefast import _core

    m = vaefast.VAE(D, hidden=(16,), latent_dim=Z, seed=1)
    X = (np.random.default_rng(3).random((9, D)) < 0.5).astype(np.float32)
    eps = np.empty((9, Z), np.float32)
    _core.reparam_eps(m.seed, 0, 0, eps)
    w0 = m.get_weights()
    _, g = torch_loss(w0, X, eps, "bernoulli", 1.0, 1, 1)
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in w0.items()}
    opt = torch.optim.Adam(params.values(), lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    for k, p in params.items():
        p.grad = torch.tensor(g[k], dtype=torch.float64)
    opt.step()
    m.fit(X, epochs=1, batch_size=9, learning_rate=1e-2, shuffle=False, progress=False)
    got = m.get_weights()
    for k, p in params.items():
        np.testing.assert_allclose(got[k], p.detach().numpy(), rtol=1e-5, atol=1e-5, err_msg=k)
