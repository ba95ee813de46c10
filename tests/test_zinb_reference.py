"""The float64 twin of the scVI count losses (vaefast/reference/count.py).

Oracles: scVI's formulas written out again in PyTorch (float64 autograd; the
mean is exp(log library)·softmax as in scvi-tools' DecoderSCVI, the
densities as its log_nb_positive / log_zinb_positive with eps = 0, the
Poisson from torch.distributions), central finite differences of the twin's
loss, and scipy.stats.nbinom for the NB pmf. All in float64: the twin and the
oracles differ only by rounding, so tolerances are ~1e-9 relative (finite
differences: h = 1e-6, truncation O(h²)·|f'''| plus rounding 1e-16/h of the
loss's magnitude, ~1e-6 absolute on losses of ~1e2).
"""

import numpy as np
import pytest

from vaefast import reference as ref


def _problem(rng, n=6, G=9, per_cell_theta=False, zeros=0.6):
    x = rng.negative_binomial(2.0, 0.3, (n, G)).astype(np.float64)
    x[rng.random((n, G)) < zeros] = 0.0
    x[0, 0], x[1, 1] = 40.0, 1.0  # a large count and a one
    r = rng.normal(0.0, 1.5, (n, G))
    lib = rng.uniform(50.0, 500.0, n)
    lt = rng.normal(0.5, 1.0, (n, G) if per_cell_theta else G)
    w = rng.normal(-1.0, 1.5, (n, G))
    return x, r, lib, lt, w


def _torch_loss(torch, lik, x, r, lib, lt, w):
    """scVI's negative log-likelihood per row, from its formulas (eps = 0)."""
    mu = torch.exp(torch.log(lib))[:, None] * torch.softmax(r, dim=-1)
    if lik == "poisson":
        return -torch.distributions.Poisson(mu).log_prob(x).sum(-1)
    theta = torch.exp(lt)
    if theta.ndim == 1:
        theta = theta[None, :]
    lg = torch.lgamma
    log_nb = (theta * (torch.log(theta) - torch.log(theta + mu))
              + x * (torch.log(mu) - torch.log(theta + mu))
              + lg(x + theta) - lg(theta) - lg(x + 1))
    if lik == "nb":
        return -log_nb.sum(-1)
    sp = torch.nn.functional.softplus
    pi_theta_log = -w + theta * (torch.log(theta) - torch.log(theta + mu))
    case_zero = sp(pi_theta_log) - sp(-w)
    case_nonzero = -sp(-w) - w + log_nb
    return -torch.where(x > 0, case_nonzero, case_zero).sum(-1)


@pytest.mark.parametrize("lik, per_cell_theta", [("poisson", False), ("nb", False),
                                                  ("nb", True), ("zinb", False), ("zinb", True)])
def test_twin_matches_torch_autograd(rng, lik, per_cell_theta):
    torch = pytest.importorskip("torch")
    x, r, lib, lt, w = _problem(rng, per_cell_theta=per_cell_theta)
    scale = 0.7
    loss, drho, dlt, dpi = ref.count_loss(x, r, lib, lt, w, lik, scale)
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
         for k, v in dict(r=r, lt=lt, w=w).items()}
    tl = _torch_loss(torch, lik, torch.tensor(x), t["r"], torch.tensor(lib), t["lt"], t["w"])
    (scale * tl.sum()).backward()
    np.testing.assert_allclose(loss, tl.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(drho, t["r"].grad.numpy(), rtol=1e-8, atol=1e-10)
    if lik != "poisson":
        assert dlt.shape == lt.shape
        np.testing.assert_allclose(dlt, t["lt"].grad.numpy(), rtol=1e-8, atol=1e-10)
    if lik == "zinb":
        np.testing.assert_allclose(dpi, t["w"].grad.numpy(), rtol=1e-8, atol=1e-12)
    else:
        assert dpi is None


@pytest.mark.parametrize("lik", ["poisson", "nb", "zinb"])
def test_twin_gradients_match_finite_differences(rng, lik):
    pytest.importorskip("scipy")
    x, r, lib, lt, w = _problem(rng, n=3, G=5)
    _, drho, dlt, dpi = ref.count_loss(x, r, lib, lt, w, lik)
    h = 1e-6

    def total(**kw):
        args = dict(rho_logits=r, log_theta=lt, pi_logits=w) | kw
        return ref.count_loss(x, library=lib, likelihood=lik, **args)[0].sum()

    for name, arr, grad in [("rho_logits", r, drho), ("log_theta", lt, dlt),
                            ("pi_logits", w, dpi)]:
        if grad is None:
            continue
        for idx in np.ndindex(arr.shape):
            up, dn = arr.copy(), arr.copy()
            up[idx] += h
            dn[idx] -= h
            fd = (total(**{name: up}) - total(**{name: dn})) / (2 * h)
            assert abs(fd - grad[idx]) <= 1e-6 * (1 + abs(fd)), (name, idx, fd, grad[idx])


def test_nb_density_matches_scipy(rng):
    stats = pytest.importorskip("scipy.stats")
    x, r, lib, lt, _ = _problem(rng)
    log_mu = ref.scvi_log_mean(r, lib)
    theta, mu = np.exp(lt)[None, :], np.exp(log_mu)
    want = stats.nbinom.logpmf(x, theta, theta / (theta + mu))
    np.testing.assert_allclose(ref.log_nb(x, log_mu, np.broadcast_to(lt, x.shape)), want,
                               rtol=1e-10, atol=1e-12)


def test_zinb_is_a_mixture_and_normalised(rng):
    """ZINB(x) = π·[x = 0] + (1 − π)·NB(x), and its pmf sums to 1."""
    pytest.importorskip("scipy")
    xs = np.arange(0, 400, dtype=np.float64)[:, None]
    log_mu, lt, w = np.log(7.5), 0.3, -0.8
    pi = 1 / (1 + np.exp(-w))
    nb = np.exp(ref.log_nb(xs, log_mu, lt))
    zinb = np.exp(ref.log_zinb(xs, log_mu, lt, w))
    np.testing.assert_allclose(zinb[1:], (1 - pi) * nb[1:], rtol=1e-12)
    np.testing.assert_allclose(zinb[0], pi + (1 - pi) * nb[0], rtol=1e-12)
    assert abs(zinb.sum() - 1.0) < 1e-10


def test_twin_is_stable_at_extremes():
    """Huge logits, tiny means, θ at the clamp: finite values, the clamp's
    gradient rule (descent never pushes ρ further out)."""
    pytest.importorskip("scipy")
    x = np.array([[0.0, 3.0, 0.0, 1.0]])
    r = np.array([[900.0, -900.0, 0.0, 80.0]])
    lt = np.array([30.0, -30.0, 0.0, 5.0])
    w = np.array([[60.0, -60.0, 0.0, 3.0]])
    for lik in ("poisson", "nb", "zinb"):
        loss, drho, dlt, dpi = ref.count_loss(x, r, np.array([1e4]), lt, w, lik)
        assert np.isfinite(loss).all() and np.isfinite(drho).all()
        if dlt is not None:
            assert np.isfinite(dlt).all()
            assert not (dlt[0] < 0) and not (dlt[1] > 0)
