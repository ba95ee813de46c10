"""bf16 encode run as one chain of AMX products, 32 rows at a time
(csrc/isa/amx_encoder.c), and X's NaN/inf check folded into its bf16
conversion (csrc/vae_bf16_encode.c).

Oracles: the amx_emulated route, the generic set's C emulation of TDPBF16PS
run layer by layer (a separate implementation that stores every hidden
layer in float32 and re-packs it), which the chain must match bit for bit;
a float64 twin that rounds each GEMM operand to bf16 for encoders of one to
three hidden layers (the bound is the float32 accumulation's γ_K·Σ|a·b| plus
one bf16 step where a hidden value sits within its bound of a rounding
midpoint: test_bf16_model.py explains it); and NumPy's isfinite for the
input check.
"""

import numpy as np
import pytest

import vaefast
from vaefast import _core

AMX = _core.bf16_amx_supported()
needs_amx = pytest.mark.skipif(not AMX, reason="no AMX-BF16 for this process: the chain "
                               "never runs here (encode goes layer by layer)")
U = 2.0**-24

# (D, hidden, Z, rows): widths that are not multiples of 16 or 32 (the
# k-padding of a hidden block), rows that end inside a 16-row group, a head
# wider than 32, no hidden layer, the benchmark's shape, and K split into
# chunks of k-steps (784 and 350 inputs: csrc/isa/amx_encoder.c CHAIN_KC)
SHAPES = [(40, (48,), 5, 64), (37, (33, 17), 3, 77), (9, (), 2, 31), (3, (17,), 2, 1),
          (70, (96, 50, 24), 20, 45), (784, (400,), 20, 300), (50, (350, 333), 4, 40)]


def bf(x):
    """float64 -> float32 -> bf16 (nearest even) as float64."""
    u = np.asarray(x, dtype=np.float64).astype(np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    return r.view(np.float32).astype(np.float64)


def data(rows, d, seed=0, subnormals=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, d)).astype(np.float32)
    if subnormals:  # VCVTNE2PS2BF16 flushes these; the packing must not
        X[:, ::5] = np.float32(1e-39) * rng.integers(1, 100, size=X[:, ::5].shape)
    return X


def bits(a):
    return a.view(np.uint32)


@pytest.fixture
def route_restored():
    yield
    _core.set_bf16_route("auto")


@needs_amx
@pytest.mark.parametrize("D,hidden,Z,rows", SHAPES)
@pytest.mark.parametrize("subnormals", [False, True])
def test_chain_has_the_bits_of_the_layer_by_layer_emulation(route_restored, D, hidden, Z,
                                                            rows, subnormals):
    m = vaefast.VAE(D, hidden=hidden, latent_dim=Z, seed=len(hidden) + D)
    X = data(rows, D, seed=rows, subnormals=subnormals)
    got = {}
    for route in ("amx", "amx_emulated"):
        _core.set_bf16_route(route)
        got[route] = m.encode(X, precision="bf16")
    for a, b in zip(got["amx"], got["amx_emulated"]):
        np.testing.assert_array_equal(bits(a), bits(b))
    # and bf16 really ran: float32 products give other bits
    assert not np.array_equal(got["amx"][0], m.encode(X, precision="fp32")[0])


@pytest.mark.parametrize("hidden", [(48,), (33, 17), (96, 50, 24)])
def test_encode_is_within_the_bf16_twin_bound(kernel_set, hidden):
    D, Z, rows = 70, 6, 45
    m = vaefast.VAE(D, hidden=hidden, latent_dim=Z, seed=11)
    X = data(rows, D, seed=2)
    w = {k: v.astype(np.float64) for k, v in m.get_weights().items()}
    x, e = X.astype(np.float64), np.zeros_like(X, dtype=np.float64)
    for i in range(len(hidden)):
        x, e = twin_layer(x, e, w[f"encoder.{i}.weight"], w[f"encoder.{i}.bias"], True)
    W = np.concatenate([w["mu.weight"], w["logvar.weight"]], axis=1)
    b = np.concatenate([w["mu.bias"], w["logvar.bias"]])
    head, e_head = twin_layer(x, e, W, b, False)
    mu, lv = m.encode(X, precision="bf16")
    assert np.all(np.abs(mu - head[:, :Z]) <= e_head[:, :Z])
    assert np.all(np.abs(lv - np.clip(head[:, Z:], -30, 30)) <= e_head[:, Z:])
    # the bound is tight enough to tell float32 products apart (with one
    # hidden layer: deeper, a possible midpoint crossing in each layer
    # widens it past that; the bits test above pins the chain there)
    mu32 = m.encode(X, precision="fp32")[0]
    assert len(hidden) > 1 or np.mean(np.abs(mu32 - head[:, :Z]) > e_head[:, :Z]) > 0.5


def twin_layer(x, ex, W, b, relu):
    """act(bf16(x)·bf16(W) + b) in float64 with a bound on the float32 C's
    distance, for x known to within ex."""
    r = bf(x)
    dr = np.maximum(np.abs(bf(x - ex) - r), np.abs(bf(x + ex) - r))  # a midpoint crossed
    rw = bf(W)
    v = r @ rw + b
    k = x.shape[1]
    e = dr @ np.abs(rw) + k * U / (1 - k * U) * ((np.abs(r) + dr) @ np.abs(rw))
    e = e + 2 * U * (np.abs(v) + e) + 1e-37  # the stored sum, the bias add
    return (np.maximum(v, 0.0) if relu else v), e


@needs_amx
@pytest.mark.parametrize("threads", [2, 3])
def test_chain_is_bit_identical_for_any_thread_count(threads_setting, threads):
    m = vaefast.VAE(300, hidden=(256, 64), latent_dim=10, seed=4)
    X = data(1000, 300, seed=4)  # 32 row blocks, enough macs for a team
    vaefast.set_num_threads(1)
    one = m.encode(X, precision="bf16")
    vaefast.set_num_threads(threads)
    for _ in range(3):  # blocks go to whichever thread claims them
        many = m.encode(X, precision="bf16")
        for a, b in zip(one, many):
            np.testing.assert_array_equal(bits(a), bits(b))


def routes():
    return [r for r in ("emulated", "native", "amx", "amx_emulated")
            if r in ("emulated", "amx_emulated") or getattr(
                _core, f"bf16_{r}_supported")()]


# where a bad value sits: the first entry, the last (a row's partial k-step,
# the last row of a partial 16-row group), the middle; NaN, +inf, -inf
BAD = [(0, 0, np.nan), (76, 36, np.inf), (40, 17, -np.inf), (76, 0, np.nan)]


@pytest.mark.parametrize("where", BAD)
def test_nonfinite_X_raises_the_fp32_error_on_every_route(kernel_set, route_restored, where):
    i, j, v = where
    m = vaefast.VAE(37, hidden=(33,), latent_dim=3, seed=1)
    X = data(77, 37)
    X[i, j] = v
    with pytest.raises(ValueError, match="^X contains NaN or infinity$"):
        m.encode(X, precision="fp32")  # NumPy's scan: the message to match
    for route in routes():
        _core.set_bf16_route(route)
        with pytest.raises(ValueError, match="^X contains NaN or infinity$"):
            m.encode(X, precision="bf16")
    # 5,000 rows: the second core call (4,096 rows each) finds it
    big = np.concatenate([data(4500, 37), X])
    with pytest.raises(ValueError, match="^X contains NaN or infinity$"):
        m.encode(big, precision="bf16")


@pytest.mark.parametrize("kind", ["conditional", "counts", "float64", "model_default"])
def test_nonfinite_X_raises_where_the_chain_does_not_run(kind):
    # a conditional layer and an input map (log1p) go layer by layer: the C
    # scan checks X there; float64 input is still checked by NumPy
    X = np.abs(data(20, 12))
    X[19, 11] = np.nan
    kw = {"n_conditions": 2} if kind == "conditional" else \
        {"likelihood": "poisson"} if kind == "counts" else {}
    prec = "bf16" if kind == "model_default" else "fp32"
    m = vaefast.VAE(12, hidden=(8,), latent_dim=2, seed=0, precision=prec, **kw)
    c = np.zeros((20, 2), np.float32) if kind == "conditional" else None
    given = X.astype(np.float64) if kind == "float64" else X
    with pytest.raises(ValueError, match="^X contains NaN or infinity$"):
        m.encode(given, c, precision=None if kind == "model_default" else "bf16")
    X[19, 11] = 1.0  # and a finite X goes through, matching isfinite's verdict
    assert np.isfinite(m.encode(X, c, precision="bf16")[0]).all()
