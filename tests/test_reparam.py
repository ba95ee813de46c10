"""Fused reparameterization kernels (vaefast.ops.reparameterize*) against
the float64 NumPy twin, finite differences and invariance properties."""

import numpy as np
import pytest

import vaefast
from vaefast import reference as ref
from vaefast.ops import (reparameterization_noise, reparameterize,
                         reparameterize_backward)

U = 2.0**-24  # float32 unit roundoff
# eps vs the float64 twin: same bound as vaefast.random.normal (see there).
EPS_REL = 5e-7


def seeded_forward(mu, lv, eps):
    """(z, per-row KL) of the twin in float64, as vf_reparam_forward returns."""
    mu, lv = np.asarray(mu, np.float64), np.asarray(lv, np.float64)
    return ref.reparam_forward(mu, lv, np.asarray(eps, np.float64)), ref.kl_normal(mu, lv)


def seeded_backward(mu, lv, dz, eps, kl_scale):
    """(dmu, dlogvar) of the twin in float64, as vf_reparam_backward returns."""
    f64 = (lambda a: None if a is None else np.asarray(a, np.float64))
    return ref.reparam_backward(f64(mu), f64(lv), f64(eps), f64(dz), kl_scale)


def inputs(rng, M, N, lv_scale=1.0):
    mu = rng.standard_normal((M, N)).astype(np.float32)
    lv = (lv_scale * rng.standard_normal((M, N))).astype(np.float32)
    return mu, lv


def z_tol(mu, lv, eps):
    # z = fma(exp(lv/2), eps, mu): exp by a degree-7 polynomial after an exact
    # reduction (<= ~4 ulp), eps within EPS_REL·max(1, |eps|), one rounding.
    s = np.exp(0.5 * lv.astype(np.float64))
    return 4 * U * np.abs(mu) + s * (EPS_REL + 8 * U) * np.maximum(1, np.abs(eps))


@pytest.mark.parametrize("M,N", [(1, 1), (3, 5), (37, 20), (64, 64), (5, 2100)])
def test_eps_matches_twin(M, N):
    eps = reparameterization_noise(17, 3, (M, N), row_offset=9)
    t = ref.reparam_eps(17, 3, 9, M, N)
    assert eps.shape == (M, N) and eps.dtype == np.float32
    assert (np.abs(eps - t) / np.maximum(1, np.abs(t))).max() <= EPS_REL


@pytest.mark.parametrize("M,N", [(1, 1), (7, 3), (33, 20), (16, 64), (3, 2100)])
def test_forward_matches_twin(rng, M, N):
    mu, lv = inputs(rng, M, N, lv_scale=3.0)
    z, kl = reparameterize(mu, lv, 5, 8, row_offset=2, return_kl=True)
    teps = ref.reparam_eps(5, 8, 2, M, N)
    tz, tkl = seeded_forward(mu, lv, teps)
    assert np.all(np.abs(z - tz) <= z_tol(mu, lv, teps))
    # KL: each term exp(lv)+mu²−1−lv is formed with ~4 roundings of operands
    # bounded by A = exp(lv)+mu²+1+|lv|, and the float32 sum of N terms adds
    # at most N·u of the running total: tolerance (N + 8)·u·ΣA per row.
    A = (np.exp(lv.astype(np.float64)) + mu.astype(np.float64) ** 2 + 1 + np.abs(lv)).sum(1)
    assert np.all(np.abs(kl - tkl) <= 0.5 * (N + 8) * U * A)


def test_explicit_eps_and_out(rng):
    mu, lv = inputs(rng, 9, 13)
    eps = reparameterization_noise(4, 4, (9, 13))
    generated = reparameterize(mu, lv, 4, 4)
    np.testing.assert_array_equal(reparameterize(mu, lv, 0, 0, eps=eps), generated)
    other = rng.standard_normal((9, 13)).astype(np.float32)
    z = np.empty((9, 13), np.float32)
    res = reparameterize(mu, lv, 4, 4, eps=other, out=z)
    assert res is z
    tz, _ = seeded_forward(mu, lv, other)
    assert np.all(np.abs(z - tz) <= z_tol(mu, lv, other))


@pytest.mark.parametrize("with_dz", [True, False])
@pytest.mark.parametrize("M,N", [(1, 3), (33, 20), (4, 2100)])
def test_backward_matches_twin(rng, M, N, with_dz):
    mu, lv = inputs(rng, M, N, lv_scale=3.0)
    dz = rng.standard_normal((M, N)).astype(np.float32) if with_dz else None
    dmu, dlv = reparameterize_backward(mu, lv, dz, 6, 1, kl_scale=0.7, row_offset=4)
    tmu, tlv = seeded_backward(mu, lv, dz, ref.reparam_eps(6, 1, 4, M, N), 0.7)
    d = np.zeros_like(mu, dtype=np.float64) if dz is None else dz.astype(np.float64)
    s = np.exp(0.5 * lv.astype(np.float64))
    eps = ref.reparam_eps(6, 1, 4, M, N)
    # dmu: one fma (1 ulp). dlv: dz·(s/2)·eps (eps within EPS_REL, s ~4 ulp,
    # 3 roundings) + 0.7·(s²−1)/2 (s² ~8 ulp, 3 roundings).
    assert np.all(np.abs(dmu - tmu) <= 2 * U * (np.abs(d) + 0.7 * np.abs(mu)))
    tol = (np.abs(d) * 0.5 * s * np.maximum(1, np.abs(eps)) * (EPS_REL + 8 * U)
           + 0.35 * (s * s + 1) * 12 * U)
    assert np.all(np.abs(dlv - tlv) <= tol)


def test_twin_backward_is_gradient_of_twin_forward(rng):
    # loss = Σ dz·z + ks·Σ KL in float64; central differences, h = 1e-6:
    # truncation O(h²·|f'''|) ~ 1e-12 and cancellation ~1e-16/h ~ 1e-10.
    M, N, ks = 3, 6, 0.4
    mu = rng.standard_normal((M, N))
    lv = rng.standard_normal((M, N))
    dz = rng.standard_normal((M, N))

    def loss(m, l):
        z, kl = seeded_forward(m, l, ref.reparam_eps(2, 3, 0, *m.shape))
        return np.sum(dz * z) + ks * kl.sum()

    gmu, glv = seeded_backward(mu, lv, dz, ref.reparam_eps(2, 3, 0, *mu.shape), ks)
    h = 1e-6
    for arr, grad in ((mu, gmu), (lv, glv)):
        fd = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + h
            up = loss(mu, lv)
            arr[idx] = old - h
            down = loss(mu, lv)
            arr[idx] = old
            fd[idx] = (up - down) / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7)


def test_c_backward_is_gradient_of_c_forward(rng):
    # Float32 forward, so only a coarse check: h = 1e-2 on float32 values,
    # error ~ u·|loss|/h + h²·|f'''| ~ 1e-3 relative.
    M, N = 4, 20
    mu, lv = inputs(rng, M, N)
    dz = rng.standard_normal((M, N))
    gmu, glv = reparameterize_backward(mu, lv, dz, 9, 9)

    def loss(m, l):
        return np.sum(dz * reparameterize(m, l, 9, 9).astype(np.float64))

    h = np.float32(1e-2)
    for which, grad in ((0, gmu), (1, glv)):
        for idx in [(0, 0), (1, 7), (3, 19)]:
            a, b = mu.copy(), lv.copy()
            (a, b)[which][idx] += h
            up = loss(a, b)
            a, b = mu.copy(), lv.copy()
            (a, b)[which][idx] -= h
            down = loss(a, b)
            assert abs((up - down) / (2 * h) - grad[idx]) <= 2e-3 * (1 + abs(grad[idx]))


def test_rows_and_threads_invariance(rng):
    M, N = 1000, 40  # 40 000 elements: above the parallel threshold
    mu, lv = inputs(rng, M, N)
    dz = rng.standard_normal((M, N)).astype(np.float32)
    before = vaefast.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            vaefast.set_num_threads(threads)
            results.append((reparameterize(mu, lv, 1, 2, return_kl=True),
                            reparameterize_backward(mu, lv, dz, 1, 2, kl_scale=0.1),
                            reparameterization_noise(1, 2, (M, N))))
    finally:
        vaefast.set_num_threads(before)
    for a, b in zip(*results):
        for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            np.testing.assert_array_equal(x, y)
    # A slice of rows with the matching row_offset gives the same values.
    z, kl = results[0][0]
    zs, kls = reparameterize(mu[300:517], lv[300:517], 1, 2, row_offset=300, return_kl=True)
    np.testing.assert_array_equal(zs, z[300:517])
    np.testing.assert_array_equal(kls, kl[300:517])
    dm, dl = reparameterize_backward(mu[5:6], lv[5:6], dz[5:6], 1, 2, kl_scale=0.1, row_offset=5)
    np.testing.assert_array_equal(dm, results[0][1][0][5:6])
    np.testing.assert_array_equal(dl, results[0][1][1][5:6])
    # Column prefixes: eps[i, j] does not depend on N.
    np.testing.assert_array_equal(reparameterization_noise(1, 2, (M, 7)), results[0][2][:, :7])


def test_streams_uncorrelated():
    shape = (500, 200)
    n = shape[0] * shape[1]
    base = reparameterization_noise(10, 20, shape).ravel()
    for other in (reparameterization_noise(11, 20, shape),
                  reparameterization_noise(10, 21, shape),
                  reparameterization_noise(10, 20, shape, row_offset=1),
                  vaefast.random.normal(10, shape)):
        assert abs(np.corrcoef(base, other.ravel())[0, 1]) < 5 / np.sqrt(n)
    stats = pytest.importorskip("scipy.stats")
    assert stats.kstest(base, "norm").pvalue > 1e-3


def test_extreme_inputs_stay_finite():
    M, N = 4, 21
    mu = np.full((M, N), 1e4, np.float32)
    mu[1::2] = -1e4
    lv = np.linspace(-30, 30, M * N, dtype=np.float32).reshape(M, N)
    z, kl = reparameterize(mu, lv, 1, 1, return_kl=True)
    dmu, dlv = reparameterize_backward(mu, lv, np.ones((M, N)), 1, 1, kl_scale=1.0)
    for a in (z, kl, dmu, dlv):
        assert np.all(np.isfinite(a))
    tz, tkl = seeded_forward(mu, lv, ref.reparam_eps(1, 1, 0, M, N))
    assert np.all(np.abs(z - tz) <= z_tol(mu, lv, ref.reparam_eps(1, 1, 0, M, N)))
    np.testing.assert_allclose(kl, tkl, rtol=(N + 8) * U)


def test_exp_accuracy_and_overflow():
    # With mu = 0 and eps = 1, z = exp(lv/2): the kernel's exp, checked
    # against float64 exp to 4 ulp over its whole finite range.
    lv = np.linspace(-170, 176, 4001, dtype=np.float32).reshape(1, -1)
    z = reparameterize(np.zeros_like(lv), lv, 0, 0, eps=np.ones_like(lv))
    t = np.exp(0.5 * lv.astype(np.float64))
    normal = t > 1.2e-38
    assert np.all(np.abs(z[normal] - t[normal]) <= 4 * U * t[normal])
    assert np.all(np.abs(z[~normal] - t[~normal]) <= 1.5e-45)  # subnormal spacing
    big = np.array([[178.0, 200.0, -250.0, -400.0]], np.float32)
    z = reparameterize(np.zeros_like(big), big, 0, 0, eps=np.ones_like(big))
    assert z[0, 0] == np.inf and z[0, 1] == np.inf and z[0, 2] == 0 and z[0, 3] == 0


def test_kernel_sets_agree(rng, on_each_kernel_set):
    mu, lv = inputs(rng, 50, 20)
    outs = on_each_kernel_set(lambda: reparameterize(mu, lv, 3, 4).astype(np.float64))
    eps = ref.reparam_eps(3, 4, 0, 50, 20)
    for isa, z in outs.items():
        assert np.all(np.abs(z - outs["generic"]) <= 2 * z_tol(mu, lv, eps)), isa


def test_empty_shapes():
    assert reparameterize(np.zeros((0, 3)), np.zeros((0, 3)), 1, 1).shape == (0, 3)
    z, kl = reparameterize(np.zeros((2, 0)), np.zeros((2, 0)), 1, 1, return_kl=True)
    assert z.shape == (2, 0) and np.array_equal(kl, [0, 0])
    dmu, dlv = reparameterize_backward(np.zeros((0, 2)), np.zeros((0, 2)), None, 1, 1)
    assert dmu.shape == (0, 2)
    assert reparameterization_noise(1, 1, (0, 4)).shape == (0, 4)


def test_errors():
    mu = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="logvar"):
        reparameterize(mu, np.zeros((2, 4)), 1, 1)
    with pytest.raises(ValueError, match="mu"):
        reparameterize(np.zeros(3), np.zeros(3), 1, 1)
    with pytest.raises(ValueError, match="mu"):
        reparameterize(np.full((2, 3), np.nan), mu, 1, 1)
    with pytest.raises(TypeError, match="mu"):
        reparameterize(np.full((2, 3), "a"), mu, 1, 1)
    with pytest.raises(ValueError, match="seed"):
        reparameterize(mu, mu, -1, 1)
    with pytest.raises(ValueError, match="step"):
        reparameterize(mu, mu, 1, 2**64)
    with pytest.raises(TypeError, match="step"):
        reparameterize(mu, mu, 1, 1.0)
    with pytest.raises(ValueError, match="eps"):
        reparameterize(mu, mu, 1, 1, eps=np.zeros((3, 2)))
    with pytest.raises(TypeError, match="out"):
        reparameterize(mu, mu, 1, 1, out=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="row_offset"):
        reparameterize(mu, mu, 1, 1, row_offset=2**32 - 1)
    with pytest.raises(ValueError, match="row_offset"):
        reparameterize(mu, mu, 1, 1, row_offset=-1)
    with pytest.raises(ValueError, match="dz"):
        reparameterize_backward(mu, mu, np.zeros((2, 2)), 1, 1)
    with pytest.raises(ValueError, match="kl_scale"):
        reparameterize_backward(mu, mu, None, 1, 1, kl_scale=np.inf)
    with pytest.raises(ValueError, match="shape"):
        reparameterization_noise(1, 1, (3,))
    with pytest.raises(ValueError, match="shape"):
        reparameterization_noise(1, 1, (3, -1))


def test_backward_out_buffers(rng):
    mu, lv = inputs(rng, 5, 6)
    dz = rng.standard_normal((5, 6)).astype(np.float32)
    a, b = np.empty((5, 6), np.float32), np.empty((5, 6), np.float32)
    dmu, dlv = reparameterize_backward(mu, lv, dz, 1, 1, kl_scale=0.2, out=(a, b))
    assert dmu is a and dlv is b
    emu, elv = reparameterize_backward(mu, lv, dz, 1, 1, kl_scale=0.2)
    np.testing.assert_array_equal(a, emu)
    np.testing.assert_array_equal(b, elv)
    with pytest.raises(TypeError, match="out"):
        reparameterize_backward(mu, lv, dz, 1, 1, out=a)
    with pytest.raises(ValueError, match="out"):
        reparameterize_backward(mu, lv, dz, 1, 1, out=(a, a))
    with pytest.raises(ValueError, match=r"out\[1\]"):
        reparameterize_backward(mu, lv, dz, 1, 1, out=(a, np.empty((6, 5), np.float32)))


def test_huge_finite_inputs_accepted():
    # The finiteness check sums the input first; an overflowing sum of finite
    # values must fall back to the exact check and be accepted.
    mu = np.full((2, 3), 3e38, np.float32)
    z = reparameterize(mu, np.zeros((2, 3)), 1, 1, eps=np.zeros((2, 3)))
    np.testing.assert_array_equal(z, mu)
    with pytest.raises(ValueError, match="logvar"):
        reparameterize(mu, np.array([[0, 0, 0], [0, -np.inf, 0]]), 1, 1)
