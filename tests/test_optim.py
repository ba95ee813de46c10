"""Adam(W) and SGD-momentum updates vs their float64 NumPy twins (and PyTorch).

Tolerances. u = 2**-24. Each step rounds every float32 operation once; the
twin is run in float64 from the same float32 inputs and with the float32-
rounded hyperparameters, so the only differences are those roundings: per
step at most ~4u relative for m and v (each a positive combination), and for
param 4u·|p| plus ~32u·lr·|m̂/(√v̂+eps)| (sqrt, two divisions, products).
They add up over the steps; the bounds below are accumulated the same way.
"""

import numpy as np
import pytest

import vaefast
from vaefast import reference as ref
from vaefast import ops

U = 2.0**-24
SIZES = [1, 7, 17, 1023]


def _f32(v):
    return float(np.float32(v))


def _state(rng, n):
    p = rng.normal(size=n).astype(np.float32)
    return p, np.zeros(n, np.float32), np.zeros(n, np.float32)


def _run_adam(rng, n, steps=5, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8, wd=0.0):
    p, m, v = _state(rng, n)
    P, Mm, V = (a.astype(np.float64) for a in (p, m, v))
    Mabs = np.zeros(n)
    p_tol = np.zeros(n)
    hp = [_f32(h) for h in (lr, b1, b2, eps, wd)]
    for t in range(1, steps + 1):
        g = rng.normal(size=n).astype(np.float32)
        ops.adam_update(p, g, m, v, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd, step=t)
        # The twin continues from the float32 state, so the check is per step.
        P, Mm, V = ref.adam_update(P, g.astype(np.float64), Mm, V, hp[0], hp[1], hp[2],
                                   hp[3], hp[4], t)
        Mabs = hp[1] * Mabs + (1 - hp[1]) * np.abs(g)
        ratio = (Mabs / (1 - hp[1]**t)) / (np.sqrt(V / (1 - hp[2]**t)) + hp[3])
        p_tol += 4 * U * np.abs(P) + 32 * U * hp[0] * ratio
        assert np.all(np.abs(m - Mm) <= 4 * U * t * Mabs)
        assert np.all(np.abs(v - V) <= 4 * U * t * V)
        assert np.all(np.abs(p - P) <= p_tol)
    return p, m, v


@pytest.mark.parametrize("n", SIZES)
def test_adam_matches_twin(rng, n):
    _run_adam(rng, n)


def test_adamw_weight_decay_matches_twin(rng):
    _run_adam(rng, 300, steps=6, lr=3e-3, b1=0.8, b2=0.99, eps=1e-6, wd=0.1)


def test_adam_twin_is_torch_formula_written_out(rng):
    # torch.optim.Adam, one step from zero state: m̂ = g, v̂ = g², so
    # p1 = p0 − lr·g/(|g| + eps) — the "sign step" of Adam's first iteration.
    p, m, v = _state(rng, 64)
    g = rng.normal(size=64)
    P, _, _ = ref.adam_update(p.astype(float), g, m.astype(float), v.astype(float),
                              0.01, 0.9, 0.999, 1e-8, 0.0, 1)
    assert np.allclose(P, p - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_adam_matches_pytorch(rng, wd):
    torch = pytest.importorskip("torch")
    n = 257
    p, m, v = _state(rng, n)
    tp = torch.nn.Parameter(torch.from_numpy(p.copy()))
    opt = (torch.optim.AdamW([tp], lr=1e-2, weight_decay=wd) if wd
           else torch.optim.Adam([tp], lr=1e-2))
    for t in range(1, 6):
        g = rng.normal(size=n).astype(np.float32)
        ops.adam_update(p, g, m, v, lr=1e-2, weight_decay=wd, step=t)
        tp.grad = torch.from_numpy(g.copy())
        opt.step()
    # Both are float32 with different operation orders (torch uses lerp):
    # a few roundings of size lr per step.
    assert np.allclose(p, tp.detach().numpy(), rtol=0, atol=5 * 64 * U * 1e-2 + 64 * U)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("wd", [0.0, 1e-3])
def test_sgd_matches_twin(rng, n, wd):
    p, vel, _ = _state(rng, n)
    P, VEL = p.astype(np.float64), vel.astype(np.float64)
    lr, mom = _f32(0.05), _f32(0.9)
    for _ in range(4):
        g = rng.normal(size=n).astype(np.float32)
        ops.sgd_update(p, g, vel, lr=lr, momentum=mom, weight_decay=wd)
        P, VEL = ref.sgd_update(P, g.astype(np.float64), VEL, lr, mom, _f32(wd))
        # vel: 3 roundings of terms bounded by |μ·vel| + |g| + |wd·p|;
        # p: 2 roundings of |p| + |lr·vel|. Twin restarts from float32 state.
        mag = mom * np.abs(VEL) + np.abs(g) + _f32(wd) * np.abs(P)
        assert np.all(np.abs(vel - VEL) <= 4 * U * mag + 1e-30)
        assert np.all(np.abs(p - P) <= 3 * U * (np.abs(P) + lr * mag) + 1e-30)
        P, VEL = p.astype(np.float64), vel.astype(np.float64)


def test_any_shape_in_place(rng):
    p, m, v = (a.reshape(3, 5) for a in _state(rng, 15))
    p0 = p.copy()
    g = rng.normal(size=(3, 5)).astype(np.float32)
    pid = p.ctypes.data
    ops.adam_update(p, g, m, v, lr=1e-2, step=1)
    P, M, V = ref.adam_update(p0.astype(float), g.astype(float), 0 * p0.astype(float),
                              0 * p0.astype(float), _f32(1e-2), _f32(0.9), _f32(0.999),
                              _f32(1e-8), 0.0, 1)
    assert p.ctypes.data == pid and p.shape == (3, 5)
    assert np.allclose(m, M, rtol=4 * U, atol=0) and np.allclose(v, V, rtol=4 * U, atol=0)
    assert np.allclose(p, P, rtol=4 * U, atol=32 * U * 1e-2)


def test_thread_count_is_bit_identical(rng):
    n = 300_001  # several chunks, odd tail
    base = rng.normal(size=n).astype(np.float32)
    g = rng.normal(size=n).astype(np.float32)
    before = vaefast.get_num_threads()
    res = []
    try:
        for k in (1, 2):
            vaefast.set_num_threads(k)
            p, m, v = base.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)
            q, vel = base.copy(), np.zeros(n, np.float32)
            for t in (1, 2):
                ops.adam_update(p, g, m, v, weight_decay=0.01, step=t)
                ops.sgd_update(q, g, vel, lr=0.1, weight_decay=0.01)
            res.append((p, m, v, q, vel))
    finally:
        vaefast.set_num_threads(before)
    for a, b in zip(*res):
        assert a.tobytes() == b.tobytes()


def test_adam_errors(rng):
    p, m, v = _state(rng, 4)
    g = np.ones(4, np.float32)
    with pytest.raises(TypeError, match="param"):
        ops.adam_update([1.0, 2.0], g, m, v)
    with pytest.raises(TypeError, match="m"):
        ops.adam_update(p, g, m.astype(np.float64), v)
    with pytest.raises(ValueError, match="v"):
        ops.adam_update(p, g, m, np.zeros(8, np.float32)[::2])
    ro = v.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="v"):
        ops.adam_update(p, g, m, ro)
    with pytest.raises(ValueError, match="m"):
        ops.adam_update(p, g, np.zeros(5, np.float32), v)
    with pytest.raises(ValueError, match="grad"):
        ops.adam_update(p, np.ones(5), m, v)
    with pytest.raises(ValueError, match="step"):
        ops.adam_update(p, g, m, v, step=0)
    with pytest.raises(TypeError, match="step"):
        ops.adam_update(p, g, m, v, step=1.5)
    for kw in ({"beta1": 1.0}, {"beta2": -0.1}, {"lr": float("nan")}, {"eps": -1.0},
               {"weight_decay": float("inf")}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            ops.adam_update(p, g, m, v, **kw)
    with pytest.raises(ValueError, match="param"):
        ops.adam_update(np.zeros(0, np.float32), g[:0], m[:0], v[:0])
    with pytest.raises(ValueError):  # binding: lengths must agree
        vaefast._core.adam_update_flat(p, g[:2], m, v, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1)
    with pytest.raises(ValueError):  # C core: t < 1
        vaefast._core.adam_update_flat(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.0, 0)
    with pytest.raises(ValueError):  # C core: float overflow to inf
        vaefast._core.adam_update_flat(p, g, m, v, 1e39, 0.9, 0.999, 1e-8, 0.0, 1)
    assert np.array_equal(m, np.zeros(4, np.float32))  # nothing touched


def test_sgd_errors(rng):
    p, vel, _ = _state(rng, 4)
    g = np.ones(4, np.float32)
    with pytest.raises(TypeError, match="velocity"):
        ops.sgd_update(p, g, [0.0] * 4, lr=0.1)
    with pytest.raises(ValueError, match="velocity"):
        ops.sgd_update(p, g, np.zeros(3, np.float32), lr=0.1)
    with pytest.raises(ValueError, match="momentum"):
        ops.sgd_update(p, g, vel, lr=0.1, momentum=-1.0)
    with pytest.raises(ValueError, match="lr"):
        ops.sgd_update(p, g, vel, lr=float("nan"))
    with pytest.raises(ValueError):
        vaefast._core.sgd_update_flat(p, g, vel, float("inf"), 0.9, 0.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("target", ["param", "grad", "m", "v", "velocity"])
def test_nonfinite_state_is_rejected_before_anything_is_written(rng, target, bad):
    arrays = {k: rng.standard_normal(1000).astype(np.float32) for k in ("param", "grad", "m")}
    arrays["v"] = rng.random(1000).astype(np.float32)
    arrays["velocity"] = arrays["m"]
    arrays[target][rng.integers(1000)] = bad
    before = {k: a.copy() for k, a in arrays.items()}
    with pytest.raises(ValueError, match=f"^{target} contains NaN or infinity"):
        if target == "velocity":
            ops.sgd_update(arrays["param"], arrays["grad"], arrays["velocity"], lr=0.1)
        else:
            ops.adam_update(arrays["param"], arrays["grad"], arrays["m"], arrays["v"])
    for k, a in arrays.items():  # a rejected update leaves every array as it was
        np.testing.assert_array_equal(a, before[k])


@pytest.mark.parametrize("n", [5, 37, 1000])
def test_overflowing_adam_update_keeps_those_entries_and_reports(rng, n):
    """|g| > 1.8e19 makes g² overflow float32: those entries keep their old
    p, m, v (never NaN/Inf), every other entry gets the ordinary update, and
    the call raises NonFiniteError afterwards."""
    p, m, v = _state(rng, n)
    g = rng.normal(size=n).astype(np.float32)
    huge = rng.choice(n, size=max(1, n // 5), replace=False)
    g[huge] = np.float32(1e20) * np.sign(g[huge] + 0.5)
    want_p, want_m, want_v = p.copy(), m.copy(), v.copy()
    fine = np.setdiff1d(np.arange(n), huge)
    ref_p, ref_m, ref_v = p[fine].copy(), m[fine].copy(), v[fine].copy()
    ops.adam_update(ref_p, g[fine], ref_m, ref_v, lr=1e-2, step=1)
    with pytest.raises(vaefast.NonFiniteError):
        ops.adam_update(p, g, m, v, lr=1e-2, step=1)
    np.testing.assert_array_equal(p[huge], want_p[huge])
    np.testing.assert_array_equal(m[huge], want_m[huge])
    np.testing.assert_array_equal(v[huge], want_v[huge])
    np.testing.assert_array_equal(p[fine], ref_p)  # element-wise: same bits
    np.testing.assert_array_equal(m[fine], ref_m)
    np.testing.assert_array_equal(v[fine], ref_v)


def test_overflowing_sgd_update_keeps_those_entries_and_reports(rng):
    p, vel, _ = _state(rng, 64)
    g = rng.normal(size=64).astype(np.float32)
    g[:8] = 3e38  # lr·velocity overflows for these
    before_p, before_vel = p.copy(), vel.copy()
    with pytest.raises(vaefast.NonFiniteError):
        ops.sgd_update(p, g, vel, lr=10.0, momentum=0.9)
    np.testing.assert_array_equal(p[:8], before_p[:8])
    np.testing.assert_array_equal(vel[:8], before_vel[:8])
    np.testing.assert_allclose(vel[8:], g[8:], rtol=0)  # momentum · 0 + g
    np.testing.assert_allclose(p[8:], before_p[8:] - np.float32(10.0) * g[8:], rtol=4 * U)
    assert np.isfinite(p).all() and np.isfinite(vel).all()
