"""to_torch of a VAE with categorical covariates (vaefast/interop/torch_covariates.py)
against the vaefast model itself: PyTorch autograd of the module's ELBO is
an independent computation of the loss and its gradients, including the
tables'. Tolerances: the float32 model's, as tests/test_covariate_vae.py
(the loss to 2e-5 relative, gradients to 1e-3 relative plus 1e-4 of their
block's largest entry); inference outputs to 1e-5 of their scale."""

import numpy as np
import pytest

import vaefast
import vaefast.interop

torch = pytest.importorskip("torch", reason="to_torch needs torch")

D, Z = 9, 3
LEVELS = (3, 2)
CASES = [dict(hidden=(8, 6), deeply_inject_covariates=True, encode_covariates=True),
         dict(hidden=(), deeply_inject_covariates=True, encode_covariates=True),
         dict(hidden=(8,), deeply_inject_covariates=False, encode_covariates=False),
         dict(hidden=(8, 6), deeply_inject_covariates=True, encode_covariates=False,
              use_batch_norm="both")]


def model(rng, case, n_cont=0):
    m = vaefast.VAE(D, latent_dim=Z, likelihood="zinb", beta=0.7, seed=1,
                    categorical_covariates=LEVELS, n_conditions=n_cont, **case)
    w = m.get_weights()  # tables of a trained model's size, not the small init
    for k in w:
        if k.endswith(".covariates"):
            w[k] = rng.standard_normal(w[k].shape).astype(np.float32)
    m.set_weights(w)
    return m


def data(rng, B=24, n_cont=0):
    x = rng.poisson(1.5, (B, D)).astype(np.float32)
    x[:, 0] += 1
    codes = np.stack([rng.integers(0, n, B) for n in LEVELS], axis=1)
    cont = rng.standard_normal((B, n_cont)).astype(np.float32) if n_cont else None
    return x, codes, cont, rng.standard_normal((B, Z)).astype(np.float32)


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_to_torch_matches_the_model_and_its_gradients(rng, case):
    n_cont = 2 if case["encode_covariates"] else 0
    m = model(rng, case, n_cont)
    x, codes, cont, eps = data(rng, n_cont=n_cont)
    t = vaefast.interop.to_torch(m).eval()  # eval: batch norm's running statistics
    tx, tk, te = torch.from_numpy(x), torch.from_numpy(codes), torch.from_numpy(eps)
    tc = None if cont is None else torch.from_numpy(cont)
    mu, lv = m.encode(x, cont, codes=codes)
    tmu, tlv = t.encode(tx, tc, codes=tk)
    np.testing.assert_allclose(tmu.detach().numpy(), mu, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tlv.detach().numpy(), lv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(t.decode(tmu, tc, codes=tk).detach().numpy(),
                               m.decode(mu, cont, codes=codes), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(t(tx, te, tc, codes=tk).detach().numpy(),
                               m.elbo(x, c=cont, eps=eps, codes=codes), rtol=2e-5)
    if "use_batch_norm" in case:
        return  # training normalises by the batch's statistics, eval() by the running ones
    loss, grads = m.loss_and_grad(x, eps, c=cont, codes=codes)
    t.train()
    t_loss = -t(tx, te, tc, codes=tk).mean()
    t_loss.backward()
    np.testing.assert_allclose(float(t_loss.detach()), loss, rtol=2e-5)
    from vaefast.interop.torch_export import vaefast_weights

    with torch.no_grad():  # the gradients in the parameters' places, read by name
        for p in t.parameters():
            p.copy_(p.grad)
    t_grads = vaefast_weights(t)
    assert any(k.endswith(".covariates") for k in grads)
    for k, g in grads.items():
        atol = 1e-4 * max(float(np.abs(g).max()), 1e-12)
        np.testing.assert_allclose(t_grads[k], g, rtol=1e-3, atol=atol, err_msg=k)


def test_from_torch_reads_the_tables_back(rng):
    m = model(rng, CASES[0], 2)
    back = vaefast.interop.from_torch(vaefast.interop.to_torch(m), seed=1)
    assert back.get_config() == m.get_config()
    for k, w in m.get_weights().items():
        np.testing.assert_array_equal(back.get_weights()[k], w, err_msg=k)


def test_the_module_checks_the_codes(rng):
    t = vaefast.interop.to_torch(model(rng, CASES[2]))
    x, codes, _, _ = data(rng)
    tx = torch.from_numpy(x)
    with pytest.raises(ValueError, match="codes is required"):
        t.encode(tx)
    with pytest.raises(ValueError, match=r"codes must have shape \(24, 2\)"):
        t.encode(tx, codes=torch.from_numpy(codes[:, :1]))
    with pytest.raises(ValueError, match="codes out of range"):
        t.encode(tx, codes=torch.from_numpy(codes + 3))
    with pytest.raises(TypeError, match="codes must hold integer codes"):
        t.encode(tx, codes=torch.from_numpy(codes.astype(np.float32)))
    plain = vaefast.interop.to_torch(vaefast.VAE(D, hidden=(4,), latent_dim=Z))
    with pytest.raises(ValueError, match="codes was given"):
        plain.encode(tx.clamp(max=1), codes=torch.from_numpy(codes))
