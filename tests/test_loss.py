"""Loss kernels (Bernoulli, Gaussian, KL) vs their float64 NumPy twins.

Tolerances. u = 2**-24 is the float32 unit roundoff. The SIMD exp/log1p are
a few ulp (<= 4 ulp = 8u relative, generic uses libm), so one float32 term
t_j = softplus(l) − x·l has error <= 16u·(|softplus(l)| + |x·l|). A row sum
of N float32 terms (recursive or lane-wise) adds at most (N−1)·u·Σ|t_j|.
So a row is checked against (N + 16)·u·Σ_j(|softplus| + |x·l|): a worst-case
bound, still orders of magnitude below any formula mistake.
"""

import numpy as np
import pytest

import vaefast
from vaefast import reference as ref
from vaefast import ops

U = 2.0**-24
SIZES = [1, 7, 17, 1023]


def _data(rng, M, N, lo=-8.0, hi=8.0):
    logits = rng.uniform(lo, hi, (M, N)).astype(np.float32)
    x = rng.uniform(0.0, 1.0, (M, N)).astype(np.float32)
    return logits, x


def _bernoulli_bounds(logits, x, scale):
    l64, x64 = logits.astype(np.float64), x.astype(np.float64)
    N = l64.shape[1]
    mag = (ref.softplus(l64) + np.abs(x64 * l64)).sum(axis=1)
    row_tol = (N + 16) * U * mag + 1e-30
    # sigmoid (<= 1) to 8 ulp, minus x, times scale, each rounded once.
    grad_tol = 24 * U * abs(scale) * (ref.sigmoid(l64) + np.abs(x64)) + 1e-30
    return row_tol, grad_tol


def _check_bernoulli(logits, x, scale=0.37):
    loss, grad = ops.bernoulli_loss(logits, x, scale=scale)
    want_loss, want_grad = ref.bernoulli_loss(logits.astype(np.float64),
                                              x.astype(np.float64), scale)
    row_tol, grad_tol = _bernoulli_bounds(logits, x, scale)
    assert loss.dtype == np.float32 and loss.shape == (logits.shape[0],)
    assert np.all(np.abs(loss - want_loss) <= row_tol)
    assert np.all(np.abs(grad - want_grad) <= grad_tol)


@pytest.mark.parametrize("N", SIZES)
def test_bernoulli_matches_twin(rng, N):
    _check_bernoulli(*_data(rng, 5, N))


def test_bernoulli_wide_range_and_tiny_logits(rng):
    # |l| up to 60 reaches exp(−|l|) far below 1: log1p must return its argument.
    logits, x = _data(rng, 4, 300, -60.0, 60.0)
    logits[0, :50] = rng.uniform(-1e-6, 1e-6, 50).astype(np.float32)
    _check_bernoulli(logits, x)


def test_bernoulli_binary_targets(rng):
    logits, x = _data(rng, 6, 200)
    _check_bernoulli(logits, (x > 0.5).astype(np.float32))


def test_bernoulli_extreme_logits():
    vals = np.array([-1e4, -100.0, -30.0, 30.0, 100.0, 1e4], np.float32)
    logits = np.repeat(vals[None, :], 3, axis=0)
    x = np.array([[0.0], [1.0], [0.5]], np.float32) * np.ones_like(logits)
    loss, grad = ops.bernoulli_loss(logits, x, scale=1.0)
    assert np.isfinite(loss).all() and np.isfinite(grad).all()
    # Exact limits: softplus(l) = max(l, 0) + log1p(e^-|l|), e^-30 ≈ 9e-14.
    l64 = logits.astype(np.float64)
    exact = (np.maximum(l64, 0) + np.log1p(np.exp(-np.abs(l64))) - x * l64).sum(axis=1)
    assert np.allclose(loss, exact, rtol=8 * U, atol=0)
    sig = np.where(l64 > 0, 1.0, 0.0)
    sig[np.abs(l64) == 30] = ref.sigmoid(l64[np.abs(l64) == 30])
    assert np.allclose(grad, sig - x, rtol=0, atol=4 * U)
    _check_bernoulli(logits, x, scale=1.0)


def test_bernoulli_naive_formula_where_safe(rng):
    # For |l| <= 15, −x·log σ − (1−x)·log(1−σ) is safe in float64.
    logits, x = _data(rng, 8, 129, -15.0, 15.0)
    l64, x64 = logits.astype(np.float64), x.astype(np.float64)
    s = 1.0 / (1.0 + np.exp(-l64))
    naive = -(x64 * np.log(s) + (1 - x64) * np.log1p(-s)).sum(axis=1)
    loss, _ = ops.bernoulli_loss(logits, x)
    row_tol, _ = _bernoulli_bounds(logits, x, 1.0)
    assert np.all(np.abs(loss - naive) <= row_tol + 1e-12 * np.abs(naive).sum())


def test_bernoulli_optional_gradient(rng):
    logits, x = _data(rng, 3, 33)
    loss, grad = ops.bernoulli_loss(logits, x, need_grad=False)
    assert grad is None
    full, _ = ops.bernoulli_loss(logits, x)
    assert np.array_equal(loss, full)


@pytest.mark.parametrize("N", SIZES)
def test_gaussian_matches_twin(rng, N):
    y = rng.normal(size=(4, N)).astype(np.float32)
    x = rng.uniform(0, 1, (4, N)).astype(np.float32)
    loss, dy = ops.gaussian_loss(y, x, scale=0.5)
    want, want_dy = ref.gaussian_loss(y.astype(np.float64), x.astype(np.float64), 0.5)
    d64 = y.astype(np.float64) - x
    # d and d² rounded once each (2u), summed over N (N·u), plus the constant.
    tol = (N + 8) * U * (0.5 * d64 * d64).sum(axis=1) + 4 * U * np.abs(want)
    assert np.all(np.abs(loss - want) <= tol)
    assert np.all(np.abs(dy - want_dy) <= 3 * U * np.abs(want_dy))
    l2, none = ops.gaussian_loss(y, x, need_grad=False)
    assert none is None and np.array_equal(l2, loss)


def _kl_check(mu, lv):
    kl = ops.kl_normal(mu, lv)
    m64, v64 = mu.astype(np.float64), lv.astype(np.float64)
    want = ref.kl_normal(m64, v64)
    N = mu.shape[1]
    # exp to 4 ulp, 3 roundings per term, then the row sum (see module docstring).
    mag = 0.5 * (np.exp(v64) + m64 * m64 + 1 + np.abs(v64)).sum(axis=1)
    assert np.isfinite(kl).all()
    assert np.all(np.abs(kl - want) <= (N + 16) * U * mag)


@pytest.mark.parametrize("N", SIZES)
def test_kl_matches_twin(rng, N):
    _kl_check(rng.normal(size=(3, N)).astype(np.float32),
              rng.uniform(-4, 4, (3, N)).astype(np.float32))


def test_kl_extreme_logvar(rng):
    lv = np.array([[-30.0, 30.0, -30.0, 30.0, 0.0]], np.float32)
    mu = np.array([[0.0, 0.0, 3.0, -3.0, 0.0]], np.float32)
    _kl_check(mu, lv)
    # Exact value: 0.5·(e^-30 + 29) + 0.5·(e^30 − 31) + ...
    assert ops.kl_normal(mu, lv)[0] == pytest.approx(ref.kl_normal(mu.astype(float), lv.astype(float))[0], rel=8 * U)


def test_twin_gradients_match_finite_differences(rng, central_differences):
    _fd_grad = central_differences
    l = rng.uniform(-5, 5, (3, 4))
    x = rng.uniform(0, 1, (3, 4))
    _, g = ref.bernoulli_loss(l, x, 1.0)
    fd = _fd_grad(lambda a: ref.bernoulli_loss(a, x)[0].sum(), l)
    # Central differences in float64: truncation O(h²) + cancellation ~1e-16/h.
    assert np.allclose(g, fd, atol=1e-8)
    y = rng.normal(size=(3, 4))
    _, gy = ref.gaussian_loss(y, x, 1.0)
    assert np.allclose(gy, _fd_grad(lambda a: ref.gaussian_loss(a, x)[0].sum(), y), atol=1e-8)


def test_thread_count_is_bit_identical(rng):
    logits, x = _data(rng, 1024, 784)
    lv = rng.uniform(-3, 3, (1024, 20)).astype(np.float32)
    mu = rng.normal(size=(1024, 20)).astype(np.float32)
    before = vaefast.get_num_threads()
    out = []
    try:
        for n in (1, 2):
            vaefast.set_num_threads(n)
            out.append((*ops.bernoulli_loss(logits, x), *ops.gaussian_loss(logits, x),
                        ops.kl_normal(mu, lv), ops.kl_normal(logits, x)))
    finally:
        vaefast.set_num_threads(before)
    for a, b in zip(*out):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("fn", [ops.bernoulli_loss, ops.gaussian_loss, ops.kl_normal])
def test_errors(fn):
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="x|logvar"):
        fn(a, np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="must be 2-dimensional"):
        fn(np.zeros(3), np.zeros(3))
    with pytest.raises(TypeError):
        fn(np.array([["a"]]), a)
    with pytest.raises(ValueError, match="empty"):
        fn(np.zeros((0, 3)), np.zeros((0, 3)))
    if fn is not ops.kl_normal:
        with pytest.raises(ValueError, match="scale"):
            fn(a, a, scale=float("nan"))
        with pytest.raises(TypeError, match="scale"):
            fn(a, a, scale="1")


def test_binding_checks_shapes():
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError):
        vaefast._core.bernoulli_loss_into(a, np.zeros((3, 2), np.float32),
                                          np.zeros(2, np.float32), None, 1.0)
    with pytest.raises(ValueError):
        vaefast._core.kl_normal_into(a, a, np.zeros(1, np.float32))


def test_accepts_float64_and_lists():
    loss, _ = ops.bernoulli_loss([[0.0, 0.0]], [[1.0, 0.0]])
    assert loss.dtype == np.float32
    assert loss[0] == pytest.approx(2 * np.log(2), rel=8 * U)


LOSSES = {  # name -> (function, its two array arguments' names)
    "bernoulli": (ops.bernoulli_loss, ("logits", "x")),
    "gaussian": (ops.gaussian_loss, ("y", "x")),
    "kl": (ops.kl_normal, ("mu", "logvar")),
}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("loss", list(LOSSES))
def test_nonfinite_input_is_rejected_by_name(rng, loss, which, bad):
    fn, names = LOSSES[loss]
    args = [rng.uniform(0.1, 0.9, (5, 37)).astype(np.float32) for _ in range(2)]
    i, j = rng.integers(5), rng.integers(37)
    args[which][i, j] = bad
    with pytest.raises(ValueError, match=f"^{names[which]} contains NaN or infinity"):
        fn(*args)


def test_result_beyond_float32_is_an_error_not_inf():
    # every input finite, but exp(100) (the variance) exceeds float32's range
    mu = np.zeros((2, 3), np.float32)
    logvar = np.full((2, 3), 100.0, np.float32)
    with pytest.raises(OverflowError, match="overflows float32"):
        ops.kl_normal(mu, logvar)
    big = np.full((1, 4), 3e38, np.float32)  # sum of softplus(3e38) over 4 columns
    with pytest.raises(ValueError, match="bernoulli_loss"):
        ops.bernoulli_loss(big, np.zeros_like(big))


def test_out_arguments(rng):
    logits, x = _data(rng, 4, 19)
    want_loss, want_grad = ops.bernoulli_loss(logits, x)
    loss, grad = np.full(4, np.nan, np.float32), np.full((4, 19), np.nan, np.float32)
    got = ops.bernoulli_loss(logits, x, out=(loss, grad))
    assert got[0] is loss and got[1] is grad
    assert np.array_equal(loss, want_loss) and np.array_equal(grad, want_grad)
    got = ops.gaussian_loss(logits, x, need_grad=False, out=(loss, None))
    assert got[0] is loss and got[1] is None
    assert np.array_equal(loss, ops.gaussian_loss(logits, x)[0])
    kl = np.empty(4, np.float32)
    assert ops.kl_normal(logits, x, out=kl) is kl
    assert np.array_equal(kl, ops.kl_normal(logits, x))
    with pytest.raises(TypeError, match="out"):
        ops.bernoulli_loss(logits, x, out=loss)
    with pytest.raises(ValueError, match=r"out\[1\]"):
        ops.bernoulli_loss(logits, x, out=(loss, np.empty((4, 18), np.float32)))
    with pytest.raises(TypeError, match=r"out\[0\]"):
        ops.gaussian_loss(logits, x, out=(np.empty(4), grad))
    with pytest.raises(ValueError, match="out"):
        ops.kl_normal(logits, x, out=np.empty(5, np.float32))


def test_read_only_inputs_accepted():
    a = np.full((2, 3), 0.25, np.float32)
    a.flags.writeable = False
    loss, _ = ops.bernoulli_loss(a, a)
    want, _ = ref.bernoulli_loss(a.astype(np.float64), a.astype(np.float64))
    assert np.allclose(loss, want, rtol=(3 + 16) * U * 4, atol=0)
