"""The count and learned-variance likelihood kernels (csrc/likelihood.c).

Three oracles: the float64 NumPy twins in vaefast/reference.py (scipy's
gammaln/digamma, an implementation independent of the kernels' series),
central finite differences of the twins in float64, and PyTorch autograd on
torch.distributions (Poisson, NegativeBinomial, Normal).

Tolerances. u = 2**-24. The kernels form each element's value in double from
float32 inputs and round the row sum once, so a row's loss is within
~2u·Σ_j |term_j| of the exact value (the bound used is (N + 16)·u·Σ|term|,
the same worst case as tests/test_loss.py). A gradient element is a double
expression rounded to float32 once, apart from float32 exp/log of the
inputs: 8u relative to the magnitude of its parts.
"""

import math

import numpy as np
import pytest

import vaefast
from vaefast import ops
from vaefast import reference as ref

U = 2.0**-24


def _counts(rng, M, N, lam=3.0):
    return rng.poisson(lam, (M, N)).astype(np.float32)


def _row_tol(*terms):
    N = terms[0].shape[1]
    mag = sum(np.abs(t) for t in terms).sum(axis=1)
    return (N + 16) * U * mag + 1e-30


def _lgamma64(x):
    return np.vectorize(math.lgamma)(x)


# ------------------------------------------------------------------ Poisson
@pytest.mark.parametrize("N", [1, 7, 300])
def test_poisson_matches_twin(rng, N):
    out = rng.normal(0.5, 1.5, (20, N)).astype(np.float32)
    x = _counts(rng, 20, N)
    x[0, : N // 2] = rng.uniform(0, 9, N // 2).astype(np.float32)  # non-integer counts
    s = rng.uniform(0.2, 5.0, 20).astype(np.float32)
    for sf in (None, s):
        loss, dout = ops.poisson_loss(out, x, size_factors=sf, scale=0.3)
        o64, x64 = out.astype(np.float64), x.astype(np.float64)
        want, want_d = ref.poisson_loss(o64, x64, None if sf is None else sf.astype(np.float64),
                                        0.3)
        rate = np.exp(o64 + (0 if sf is None else np.log(sf.astype(np.float64))[:, None]))
        assert np.all(np.abs(loss - want) <= _row_tol(rate, x64 * np.log(rate), _lgamma64(x64 + 1)))
        assert np.all(np.abs(dout - want_d) <= 8 * U * 0.3 * (rate + x64))


def test_poisson_large_counts_and_extreme_logits():
    out = np.array([[-100.0, -30.0, 0.0, 12.0, 29.0, 60.0, 1e4, -1e4]], np.float32)
    x = np.array([[0.0, 1e6, 3.0, 2e5, 1e12, 0.0, 5.0, 1e3]], np.float32)
    loss, dout = ops.poisson_loss(out, x)
    assert np.isfinite(loss).all() and np.isfinite(dout).all()
    want, want_d = ref.poisson_loss(out.astype(np.float64), x.astype(np.float64))
    eta = np.minimum(out.astype(np.float64), 30)
    assert np.abs(loss - want) <= _row_tol(np.exp(eta), x * eta, _lgamma64(x + 1.0))
    np.testing.assert_allclose(dout, want_d, rtol=8 * U, atol=2.0**-126)  # subnormal rates


def test_log_factorial_table_matches_lgamma():
    x = np.arange(0, 300, dtype=np.float32)[None, :]  # crosses the table's end (256)
    loss, _ = ops.poisson_loss(np.zeros_like(x), x, need_grad=False)
    # rate 1: loss = Σ 1 − 0 + lgamma(x + 1)
    want = x.shape[1] + sum(math.lgamma(k + 1.0) for k in range(300))
    assert abs(loss[0] - want) <= 4 * U * want


# --------------------------------------------------------- negative binomial
def _nb_case(rng, M, N, lam=4.0):
    out = rng.normal(1.0, 1.5, (M, N)).astype(np.float32)
    x = _counts(rng, M, N, lam)
    lt = rng.uniform(-3, 5, N).astype(np.float32)
    return out, x, lt


def _nb_check(out, x, lt, s=None, scale=0.7):
    loss, dout, dlt = ops.negative_binomial_loss(out, x, lt, size_factors=s, scale=scale)
    o64, x64, lt64 = (a.astype(np.float64) for a in (out, x, lt))
    s64 = None if s is None else s.astype(np.float64)
    want, want_d, want_t = ref.negbin_loss(o64, x64, lt64, s64, scale)
    theta = np.exp(np.clip(lt64, -20, 20))[None, :] * np.ones_like(o64)
    mu = np.exp(o64 + (0 if s is None else np.log(s64)[:, None]))
    terms = (_lgamma64(x64 + theta), _lgamma64(theta), _lgamma64(x64 + 1),
             theta * np.log1p(mu / theta), x64 * np.abs(np.log(mu / (theta + mu))))
    assert np.all(np.abs(loss - want) <= _row_tol(*terms))
    assert np.all(np.abs(dout - want_d) <= 8 * U * scale * (x64 + theta + x64))
    # ∂/∂log θ is θ times a difference of digammas: the series' 1e-11 absolute
    # error, scaled by θ, on top of rounding.
    mag = scale * (theta * (np.abs(want_t / scale / theta) + 2) + x64)
    assert np.all(np.abs(dlt - want_t) <= 16 * U * mag + scale * theta * 1e-10)


@pytest.mark.parametrize("N", [1, 5, 300])
def test_negbin_matches_twin(rng, N):
    out, x, lt = _nb_case(rng, 18, N)
    x[1, :] = rng.uniform(0, 40, N).astype(np.float32)  # non-integer and > 16 counts
    _nb_check(out, x, lt)
    _nb_check(out, x, lt, s=rng.uniform(0.3, 3.0, 18).astype(np.float32))


def test_negbin_extremes(rng):
    # huge/tiny means, huge counts, θ at and beyond both clamps
    out = np.array([[-60.0, 60.0, 0.0, 25.0, -5.0, 3.0]] * 3, np.float32)
    x = np.array([[0.0, 1e7, 2.0, 1e9, 0.0, 1e4]] * 3, np.float32)
    for lt in ([-25.0, 25.0, -20.0, 20.0, 0.0, 10.0], [0.0] * 6, [-3.0] * 6):
        lt = np.array(lt, np.float32)
        loss, dout, dlt = ops.negative_binomial_loss(out, x, lt)
        assert np.isfinite(loss).all() and np.isfinite(dout).all() and np.isfinite(dlt).all()
        want, want_d, want_t = ref.negbin_loss(out.astype(np.float64), x.astype(np.float64),
                                               lt.astype(np.float64))
        np.testing.assert_allclose(loss, want, rtol=1e-6)
        np.testing.assert_allclose(dout, want_d, rtol=1e-6, atol=1e-6 * np.abs(want_d).max())
        np.testing.assert_allclose(dlt, want_t, rtol=1e-5, atol=1e-5 * np.abs(want_t).max())
    # beyond a clamp, the log θ gradient vanishes only where descent pushes outward
    lt = np.array([-25.0, 25.0, -25.0, 25.0, -25.0, 25.0], np.float32)
    _, _, dlt = ops.negative_binomial_loss(out, x, lt)
    g = dlt.sum(axis=0)
    assert np.all(g[lt < -20] <= 0) and np.all(g[lt > 20] >= 0)


# ------------------------------------------------------- Gaussian, variance
@pytest.mark.parametrize("per_element", [False, True])
def test_gaussian_var_matches_twin(rng, per_element):
    M, N = 12, 37
    y = rng.normal(size=(M, N)).astype(np.float32)
    x = rng.normal(size=(M, N)).astype(np.float32)
    lv = rng.uniform(-12, 4, (M, N) if per_element else N).astype(np.float32)
    loss, dy, dlv = ops.gaussian_var_loss(y, x, lv, scale=0.25)
    y64, x64, lv64 = y.astype(np.float64), x.astype(np.float64), lv.astype(np.float64)
    want, want_dy, want_dlv = ref.gaussian_var_loss(y64, x64, lv64, 0.25)
    v = np.maximum(np.broadcast_to(lv64, y.shape), -10)
    q = (y64 - x64) ** 2 * np.exp(-v)
    assert np.all(np.abs(loss - want) <= _row_tol(q, v, np.full_like(q, 1.0)))
    assert np.all(np.abs(dy - want_dy) <= 8 * U * np.abs(want_dy))
    assert np.all(np.abs(dlv - want_dlv) <= 8 * U * 0.25 * (1 + q))
    # below the floor only upward steps pass
    below = np.broadcast_to(lv64, y.shape) < -10
    assert np.all(dlv[below] <= 0)


# ------------------------------------------------------ thread-count invariance
def test_kernels_bit_identical_across_thread_counts(rng):
    out, x, lt = _nb_case(rng, 400, 97)
    lv = rng.uniform(-3, 3, (400, 97)).astype(np.float32)
    old = vaefast.get_num_threads()
    results = []
    try:
        for t in (1, 2, 3):
            vaefast.set_num_threads(t)
            results.append((ops.poisson_loss(out, x), ops.negative_binomial_loss(out, x, lt),
                            ops.gaussian_var_loss(out, x, lv)))
    finally:
        vaefast.set_num_threads(old)
    flat = [[a for part in r for a in part] for r in results]
    for other in flat[1:]:
        for a, b in zip(flat[0], other):
            assert np.array_equal(a, b)


# ------------------------------------------------------------ input checks
def test_counts_validated():
    with pytest.raises(ValueError, match="x must be non-negative"):
        ops.poisson_loss(np.zeros((2, 3)), -np.ones((2, 3)))
    with pytest.raises(ValueError, match="size_factors must be > 0"):
        ops.poisson_loss(np.zeros((2, 3)), np.ones((2, 3)), size_factors=[1.0, 0.0])
    with pytest.raises(ValueError, match="log_theta"):
        ops.negative_binomial_loss(np.zeros((2, 3)), np.ones((2, 3)), np.zeros(4))
    with pytest.raises(ValueError, match="logvar"):
        ops.gaussian_var_loss(np.zeros((2, 3)), np.ones((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="x contains NaN"):
        ops.poisson_loss(np.zeros((2, 3)), np.full((2, 3), np.nan))


# ------------------------------------------- the twins: finite differences
def test_twins_match_finite_differences(rng, central_differences):
    _fd = central_differences
    out = rng.normal(0.5, 1.0, (4, 5))
    x = rng.poisson(3.0, (4, 5)).astype(np.float64) + rng.uniform(0, 1, (4, 5)) * (rng.random((4, 5)) < 0.3)
    s = rng.uniform(0.5, 2.0, 4)
    lt = rng.uniform(-2, 3, 5)
    lv = rng.uniform(-3, 2, (4, 5))
    _, d = ref.poisson_loss(out, x, s)
    np.testing.assert_allclose(d, _fd(lambda o: ref.poisson_loss(o, x, s)[0].sum(), out), rtol=1e-6, atol=1e-7)
    _, d, dt = ref.negbin_loss(out, x, lt, s)
    np.testing.assert_allclose(d, _fd(lambda o: ref.negbin_loss(o, x, lt, s)[0].sum(), out), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dt.sum(0), _fd(lambda t: ref.negbin_loss(out, x, t, s)[0].sum(), lt), rtol=1e-6, atol=1e-7)
    _, dy, dv = ref.gaussian_var_loss(out, x, lv)
    np.testing.assert_allclose(dy, _fd(lambda y: ref.gaussian_var_loss(y, x, lv)[0].sum(), out), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dv, _fd(lambda v: ref.gaussian_var_loss(out, x, v)[0].sum(), lv), rtol=1e-6, atol=1e-7)


# ------------------------------------------------ the kernels: torch autograd
def test_kernels_match_torch_distributions(rng):
    torch = pytest.importorskip("torch")
    D = torch.distributions
    M, N = 6, 9
    out = rng.normal(0.5, 1.2, (M, N)).astype(np.float32)
    x = _counts(rng, M, N, 5.0)
    s = rng.uniform(0.5, 2.0, M).astype(np.float32)
    lt = rng.uniform(-2, 3, N).astype(np.float32)
    lv = rng.uniform(-4, 2, (M, N)).astype(np.float32)

    def t(a):
        return torch.tensor(a.astype(np.float64), requires_grad=True)

    xt = torch.tensor(x.astype(np.float64))
    # Poisson: rate s·exp(out)
    o = t(out)
    nll = -D.Poisson(torch.tensor(s.astype(np.float64))[:, None] * torch.exp(o)).log_prob(xt).sum(1)
    nll.sum().backward()
    loss, dout = ops.poisson_loss(out, x, size_factors=s)
    np.testing.assert_allclose(loss, nll.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(dout, o.grad.numpy(), rtol=1e-5, atol=1e-6)
    # Negative binomial: torch's (total_count θ, logits log(μ/θ)) has mean μ
    o, r = t(out), t(lt)
    eta = o + torch.log(torch.tensor(s.astype(np.float64)))[:, None]
    nll = -D.NegativeBinomial(total_count=torch.exp(r)[None, :].expand(M, N),
                              logits=eta - r[None, :]).log_prob(xt).sum(1)
    nll.sum().backward()
    loss, dout, dlt = ops.negative_binomial_loss(out, x, lt, size_factors=s)
    np.testing.assert_allclose(loss, nll.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(dout, o.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dlt.sum(0), r.grad.numpy(), rtol=1e-5, atol=1e-5)
    # Gaussian with a log-variance per element
    y, v = t(out), t(lv)
    xt = torch.tensor(lv.astype(np.float64) * 0 + x.astype(np.float64) / 5)
    nll = -D.Normal(y, torch.exp(0.5 * v)).log_prob(xt).sum(1)
    nll.sum().backward()
    loss, dy, dv = ops.gaussian_var_loss(out, x / 5, lv)
    np.testing.assert_allclose(loss, nll.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(dy, y.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dv, v.grad.numpy(), rtol=1e-5, atol=1e-6)
