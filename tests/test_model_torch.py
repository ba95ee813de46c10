"""The C model against PyTorch autograd: same net, same weights, same eps.

Torch runs in float64 on the float32 weights, so it is an independent oracle
(different code, automatic differentiation). Tolerances as in test_model.py:
float32 accumulation over a few hundred terms gives relative errors ~1e-6;
rtol 1e-4 with atol 1e-4 × the gradient's largest entry.

The stored dump (tests/data/torch_reference.npz, written by
tests/torch_reference.py) carries torch's loss and gradients for two small
models, so that check runs on every CI run even where torch is absent; the
live tests run when torch is installed.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import vaefast


def _load_oracle():
    path = Path(__file__).with_name("torch_reference.py")
    spec = importlib.util.spec_from_file_location("vaefast_torch_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


oracle = _load_oracle()
torch_loss = oracle.torch_loss
D, Z = 20, 4


def assert_matches_torch(loss, grads, want_loss, want):
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    assert set(grads) == set(want)
    for k in want:
        atol = 1e-4 * max(float(np.abs(want[k]).max()), 1e-12)
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-4, atol=atol, err_msg=k)


@pytest.mark.parametrize("name", sorted(oracle.DUMP_MODELS))
def test_loss_and_every_gradient_match_stored_torch_dump(name):
    dump = np.load(oracle.DUMP)
    config = json.loads(str(dump[f"{name}/config"]))
    assert config == json.loads(json.dumps(oracle.DUMP_MODELS[name]))  # dump is current
    m = vaefast.VAE(**config)
    prefix = f"{name}/weight/"
    m.set_weights({k[len(prefix):]: dump[k] for k in dump.files if k.startswith(prefix)})
    X, eps = oracle.dump_inputs(config)
    loss, grads = m.loss_and_grad(X, eps=eps)
    prefix = f"{name}/grad/"
    want = {k[len(prefix):]: dump[k] for k in dump.files if k.startswith(prefix)}
    assert_matches_torch(loss, grads, float(dump[f"{name}/loss"]), want)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("hidden, dec", [((16,), None), ((16, 8), (12,)), ((), ())])
def test_loss_and_every_gradient_match_torch(likelihood, hidden, dec):
    pytest.importorskip("torch")
    m = vaefast.VAE(D, hidden=hidden, latent_dim=Z, likelihood=likelihood, beta=0.7,
                    seed=2, decoder_hidden=dec)
    rng = np.random.default_rng(0)
    X = ((rng.random((11, D)) < 0.3).astype(np.float32) if likelihood == "bernoulli"
         else rng.standard_normal((11, D)).astype(np.float32))
    eps = rng.standard_normal((11, Z)).astype(np.float32)
    loss, grads = m.loss_and_grad(X, eps=eps)
    want_loss, want = torch_loss(m.get_weights(), X, eps, likelihood, 0.7,
                                 len(m.hidden), len(m.decoder_hidden))
    assert_matches_torch(loss, grads, want_loss, want)


def test_adam_step_matches_torch_optimizer():
    """One fit step (batch = all rows, no shuffling) equals torch.optim.Adam
    on the autograd gradient with the core's eps; the update is lr·O(1), so
    atol 1e-3·lr allows a 0.1% error per step where g ≈ 0."""
    torch = pytest.importorskip("torch")
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
