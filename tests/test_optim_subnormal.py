"""Adam with subnormal first moments (the dead-unit state) vs exact oracles.

A weight whose gradient stays 0 has m decaying by beta1 into the
subnormals, where it sticks: RN(0.9·k) = k for the smallest k ulps. The
SIMD kernels compute such lanes without arithmetic on the subnormals
(csrc/isa/optim_kernels.c); every bit must be the IEEE result.

Oracles, all bit-exact: a float32·float32 product is exact in float64, so
casting it to float32 is the one IEEE rounding (subnormal range included):
    g = 0:        m' = RN32(b1·m),  v' = RN32(b2·v) (v normal or subnormal),
                  p' = p (the update is under a hundredth of an ulp of p:
                  |m'| < 2^-126, den >= eps)
    |u| large:    m' = u = RN32(RN32(1 − b1)·g)  (b1·m is under half an ulp
                  of u); p and v there follow the float64 twin within the
                  bounds of tests/test_optim.py's first step.
Lanes the fast route hands back to the ordinary kernel (a tiny nonzero g,
p = 0) are checked too: m' = RN32(b1·m + u) is exact in float64 there.
Where the CPU takes no assists on subnormals the plain path runs instead
(cpu_features()["fast_subnormals"]); every test here runs on both.
"""

import numpy as np
import pytest

import vaefast
from vaefast import _core, ops
from vaefast import reference as ref

U = 2.0**-24
TINY = np.float32(2.0**-149)
B1, B2, LR, EPS = 0.9, 0.999, 1e-3, 1e-8


def _f64(x):
    return np.asarray(x, np.float32).astype(np.float64)


def _rn32(x):
    return np.asarray(x, np.float64).astype(np.float32)


def _bits(a):
    return np.asarray(a, np.float32).view(np.uint32)


@pytest.fixture(autouse=True, params=[True, False], ids=["route", "plain"])
def subnormal_route(request):
    """Each test on both of Adam's paths for vectors holding a subnormal m or v."""
    assert _core.set_adam_subnormal_route(request.param) is request.param
    yield request.param
    _core.set_adam_subnormal_route(None)


def _dead_state(rng, n):
    """p ~ N(0, 1), m = ±k·2^-149 (k < 600), g: 0 in half the lanes (±0),
    N(0, 1e-3) in the others; v normal, or k·2^-149 (k < 1000, where v
    sticks after ~65k steps) in a third of the lanes with g = 0."""
    p = rng.normal(size=n).astype(np.float32)
    m = (rng.integers(1, 600, n) * rng.choice([-1, 1], n)).astype(np.float32) * TINY
    g = np.where(rng.random(n) < 0.5, 0.0, rng.normal(size=n) * 1e-3).astype(np.float32)
    g[::17] = -0.0
    v = (rng.random(n) * 1e-6 + 1e-9).astype(np.float32)
    v_dead = rng.integers(1, 1000, n).astype(np.float32) * TINY
    v = np.where((g == 0) & (rng.random(n) < 0.33), v_dead, v).astype(np.float32)
    return p, m, v, g


@pytest.mark.parametrize("n", [16, 333, 4099])
def test_subnormal_m_is_exact_over_steps(rng, n):
    p, m, v, g = _dead_state(rng, n)
    dead = g == 0
    assert np.all(np.abs(m) < np.float32(2.0**-126)) and dead.any() and (~dead).any()
    assert np.any(v[dead] < np.float32(2.0**-126))
    for t in range(1, 6):
        p0, m0, v0 = p.copy(), m.copy(), v.copy()
        ops.adam_update(p, g, m, v, lr=LR, beta1=B1, beta2=B2, eps=EPS, step=t)
        # dead lanes: bit-exact products, p untouched
        assert np.array_equal(_bits(m[dead]), _bits(_rn32(_f64(B1) * _f64(m0[dead]))))
        assert np.array_equal(_bits(v[dead]), _bits(_rn32(_f64(B2) * _f64(v0[dead]))))
        assert np.array_equal(_bits(p[dead]), _bits(p0[dead]))
        # live lanes: m' is u exactly; p, v against the float64 twin
        live = ~dead
        u = _rn32(_f64(np.float32(1.0 - np.float64(np.float32(B1)))) * _f64(g[live]))
        assert np.array_equal(_bits(m[live]), _bits(u))
        P, _, V = ref.adam_update(_f64(p0[live]), _f64(g[live]), _f64(m0[live]),
                                  _f64(v0[live]), LR, _f64(B1), _f64(B2), _f64(EPS), 0.0, t)
        assert np.all(np.abs(v[live] - V) <= 4 * U * V)
        ratio = (np.abs(u) / (1 - _f64(B1)**t)) / (np.sqrt(V / (1 - _f64(B2)**t)) + EPS)
        assert np.all(np.abs(p[live] - P) <= 4 * U * np.abs(P) + 32 * U * LR * ratio)
        # next step: new gradients and subnormal m again in the live lanes
        g = np.where(dead, g, rng.normal(size=n) * 1e-3).astype(np.float32)
        m[live] = _dead_state(rng, n)[1][live]


def test_lanes_handed_back_are_exact_too(rng):
    n = 64
    p, m, v, g = _dead_state(rng, n)
    g[:] = 0.0
    v = (rng.random(n) * 1e-6 + 1e-9).astype(np.float32)  # normal: the twin's bound holds
    # one case per block of 16 (a whole vector on every set), g = 0 elsewhere
    g[3:16:4] = 1e-40   # tiny nonzero gradient: u subnormal too
    g[17:32:4] = -3e-38
    p[33:48:4] = 0.0    # p = 0: the update is not negligible
    p[49:64:4] = 1e-37  # normal, but the update moves it by hundreds of ulps
    p0, m0, v0 = p.copy(), m.copy(), v.copy()
    ops.adam_update(p, g, m, v, lr=LR, beta1=B1, beta2=B2, eps=EPS, step=3)
    u = _f64(_rn32(_f64(np.float32(1.0 - np.float64(np.float32(B1)))) * _f64(g)))
    b1m = _f64(B1) * _f64(m0)
    if vaefast.isa() == "generic":  # the reference set rounds b1·m first (no fma)
        b1m = _f64(_rn32(b1m))
    assert np.array_equal(_bits(m), _bits(_rn32(b1m + u)))
    P, _, _ = ref.adam_update(_f64(p0), _f64(g), _f64(m0), _f64(v0), LR, _f64(B1), _f64(B2),
                              _f64(EPS), 0.0, 3)
    # relative bound of the twin comparison plus an ulp of the subnormal range
    assert np.all(np.abs(p - P) <= 4 * U * np.abs(P) + 32 * U * np.abs(P - _f64(p0)) + TINY)
    assert np.all(p[33:48:4] != 0) and np.any(p[49:64:4] != p0[49:64:4])  # applied


def test_dead_state_is_thread_count_free(rng):
    p, m, v, g = _dead_state(rng, 300_001)
    out = []
    for threads in (1, 2):
        vaefast.set_num_threads(threads)
        P, M, V = p.copy(), m.copy(), v.copy()
        ops.adam_update(P, g, M, V, lr=LR, step=9)
        out.append(np.stack([P, M, V]))
    vaefast.set_num_threads(1)
    assert np.array_equal(_bits(out[0]), _bits(out[1]))


def test_the_two_paths_give_the_same_bits(rng, subnormal_route):
    p, m, v, g = _dead_state(rng, 4099)
    g[3::50] = 1e-40  # lanes the route hands back to the plain path
    out = []
    for route in (subnormal_route, not subnormal_route):
        _core.set_adam_subnormal_route(route)
        P, M, V = p.copy(), m.copy(), v.copy()
        for t in range(1, 5):
            ops.adam_update(P, g, M, V, lr=LR, beta1=B1, beta2=B2, eps=EPS, step=t)
        out.append(np.stack([P, M, V]))
    assert np.array_equal(_bits(out[0]), _bits(out[1]))
    assert not np.array_equal(_bits(out[0][0]), _bits(p))  # the live lanes moved
