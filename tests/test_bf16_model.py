"""precision="bf16" in the model (issue 26): encode, elbo and one training
step's gradients against a float64 twin that rounds the same GEMM operands
to bf16, learning, thread-count and route bit-identity, the argument.

The twin is the model written out in float64 (one encoder and one decoder
hidden layer, Gaussian unit variance), every GEMM operand rounded to bf16 as
the packing does (float32 first, then nearest-even to 8 bits). Next to each
twin value it carries a bound on |C − twin|, propagated layer by layer:

* a product of bf16 operands accumulated in float32 is within
  γ_K·Σ|a_k·b_k| of the exact one (docs/precision.md), plus one float32
  rounding of the stored result;
* an operand the C computed (an activation, a gradient) differs from the
  twin's by at most its bound e, so its bf16 rounding differs by at most
  max(|bf16(x ± e) − bf16(x)|): zero unless x ± e crosses a rounding
  midpoint, one bf16 step (2^-8 relative) when it does;
* a ReLU mask is uncertain only where the pre-activation is within its bound
  of 0; the float32 element-wise steps (bias, reparameterization, losses)
  add a few float32 roundings each, written where they happen.

The bounds are tight enough to fail a float32 product (the test checks that
the fp32 result lies outside them) and rigorous enough not to fail a
correct bf16 one whichever route runs (AMX's order keeps the same γ_K bound).
"""

import platform

import numpy as np
import pytest

import vaefast
from vaefast import _core

U = 2.0**-24
D, H1, Z, H2, B = 40, 48, 5, 32, 64
NATIVE = _core.bf16_native_supported()
AMX = _core.bf16_amx_supported()
# The optimizer packs weights for the x86-64 routes only (vae_packed_weights.c):
# AArch64's BFMLAL driver packs its operands itself; its training bits are
# checked by test_bf16_fit_is_bit_identical_for_any_thread_count and
# test_emulated_route_fits_the_same_bits.
OPTIMIZER_PACKS_NATIVE = NATIVE and platform.machine().lower() in ("x86_64", "amd64")
needs_native_packing = pytest.mark.skipif(
    not OPTIMIZER_PACKS_NATIVE, reason="the optimizer packs weights for the x86-64 VDPBF16PS "
    "route only, and this process has no such route")


def bf(x):
    """float64 -> float32 -> bf16 (nearest even) as float64 values."""
    u = np.asarray(x, dtype=np.float64).astype(np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    return r.view(np.float32).astype(np.float64)


def gamma(k):
    return k * U / (1 - k * U)


def rounded(x, e):
    """bf16(x) and the bound on |bf16(x_C) − bf16(x)| for |x_C − x| <= e."""
    r = bf(x)
    return r, np.maximum(np.abs(bf(x - e) - r), np.abs(bf(x + e) - r))


def product(a, ea, b, eb):
    """The twin of bf16(a)·bf16(b) with float32 accumulation, and its bound."""
    ra, da = rounded(a, ea)
    rb, db = rounded(b, eb)
    v = ra @ rb
    mag = (np.abs(ra) + da) @ (np.abs(rb) + db)
    err = da @ np.abs(rb) + np.abs(ra) @ db + da @ db + gamma(a.shape[1]) * mag
    return v, err + U * np.abs(v) + 1e-37  # the stored float32; flushed tiny values


def layer(x, ex, W, b, relu):
    """act(bf16(x)·bf16(W) + b): (output, bound, pre-activation)."""
    v, e = product(x, ex, W, 0.0)
    pre = v + b
    e = e + U * (np.abs(pre) + e)  # the bias add's rounding
    return (np.maximum(pre, 0.0) if relu else pre), e, pre


def masked(d, ed, pre, epre):
    """d ⊙ [pre > 0] with the mask uncertain where |pre| <= epre."""
    out = np.where(pre > 0, d, 0.0)
    unsure = np.abs(pre) <= epre
    return out, np.where(unsure, np.abs(d) + ed, np.where(pre > 0, ed, 0.0))


def model_and_data(seed=3):
    m = vaefast.VAE(D, hidden=(H1,), latent_dim=Z, decoder_hidden=(H2,),
                    likelihood="gaussian", seed=seed)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, D)).astype(np.float32)
    eps = rng.standard_normal((B, Z)).astype(np.float32)
    w = {k: v.astype(np.float64) for k, v in m.get_weights().items()}
    return m, X, eps, w


def twin_forward(w, X, eps):
    """Every intermediate of the forward pass with its bound (dict)."""
    t = {}
    t["h1"], t["e_h1"], t["p1"] = layer(X, 0.0, w["encoder.0.weight"], w["encoder.0.bias"], True)
    Wh = np.concatenate([w["mu.weight"], w["logvar.weight"]], axis=1)
    bh = np.concatenate([w["mu.bias"], w["logvar.bias"]])
    head, e_head, _ = layer(t["h1"], t["e_h1"], Wh, bh, False)
    t["mu"], t["e_mu"] = head[:, :Z], e_head[:, :Z]
    t["lv"], t["e_lv"] = np.clip(head[:, Z:], -30, 30), e_head[:, Z:]
    s = np.exp(t["lv"] / 2)
    t["z"] = t["mu"] + s * eps
    # exp(lv/2) moves by at most s·(exp(e/2) − 1); float32 exp, mul, add: 4 roundings
    t["e_z"] = t["e_mu"] + s * np.expm1(t["e_lv"] / 2) * np.abs(eps) + 4 * U * (
        np.abs(t["mu"]) + s * np.abs(eps))
    t["h2"], t["e_h2"], t["p2"] = layer(t["z"], t["e_z"], w["decoder.0.weight"],
                                        w["decoder.0.bias"], True)
    t["y"], t["e_y"], _ = layer(t["h2"], t["e_h2"], w["output.weight"], w["output.bias"], False)
    return t


def twin_elbo(t, X):
    """Per-row ELBO and its bound (Gaussian unit variance, beta 1)."""
    r = X - t["y"]
    recon = 0.5 * (r**2).sum(1) + D * 0.5 * np.log(2 * np.pi)
    e_recon = (np.abs(r) * t["e_y"] + 0.5 * t["e_y"]**2).sum(1)
    ex = np.exp(t["lv"])
    kl = 0.5 * (t["mu"]**2 + ex - 1 - t["lv"]).sum(1)
    e_kl = (np.abs(t["mu"]) * t["e_mu"] + 0.5 * t["e_mu"]**2
            + 0.5 * (np.abs(ex - 1) * t["e_lv"] + ex * (np.expm1(t["e_lv"]) - t["e_lv"]))).sum(1)
    # float32 evaluation of both sums (D and Z terms, a few roundings each)
    e32 = (D + 8) * U * (0.5 * (r**2).sum(1) + D) + (Z + 8) * U * (
        0.5 * (t["mu"]**2 + ex + 1 + np.abs(t["lv"]))).sum(1)
    return -(recon + kl), e_recon + e_kl + e32


def bias_grad(d, ed):
    """Column sums of the float32 d (never bf16), summed in float32 in row
    order (csrc/bf16_kernels.h): recursive summation, γ_B·Σ|d|."""
    db = d.sum(0)
    return db, ed.sum(0) + gamma(d.shape[0]) * (np.abs(d) + ed).sum(0) + 1e-37


def twin_grads(w, t, X, eps):
    """Gradients of the batch-mean negative ELBO, and their bounds."""
    g = {}

    def weight_and_bias(name, x, ex, d, ed):
        g[name + ".weight"] = product(x.T, ex.T, d, ed) if np.ndim(ex) else product(x.T, ex, d, ed)
        g[name + ".bias"] = bias_grad(d, ed)

    dy = (t["y"] - X) / B
    e_dy = t["e_y"] / B + 2 * U * np.abs(dy)
    weight_and_bias("output", t["h2"], t["e_h2"], dy, e_dy)
    d2, e_d2 = product(dy, e_dy, w["output.weight"].T, 0.0)
    d2, e_d2 = masked(d2, e_d2, t["p2"], t["e_h2"])
    weight_and_bias("decoder.0", t["z"], t["e_z"], d2, e_d2)
    dz, e_dz = product(d2, e_d2, w["decoder.0.weight"].T, 0.0)
    s = np.exp(t["lv"] / 2)
    dmu = dz + t["mu"] / B
    e_dmu = e_dz + t["e_mu"] / B + 4 * U * (np.abs(dz) + np.abs(t["mu"]) / B)
    ex = np.exp(t["lv"])
    dlv = 0.5 * dz * eps * s + 0.5 * (ex - 1) / B
    grow = np.expm1(t["e_lv"])  # exp(lv + e) = exp(lv)·(1 + expm1(e))
    e_dlv = (0.5 * np.abs(eps) * (e_dz * s * (1 + grow) + np.abs(dz) * s * grow)
             + 0.5 * ex * grow / B
             + 8 * U * (0.5 * np.abs(dz * eps) * s + 0.5 * (ex + 1) / B))
    dh = np.concatenate([dmu, dlv], axis=1)
    e_dh = np.concatenate([e_dmu, e_dlv], axis=1)
    wh, ewh = product(t["h1"].T, t["e_h1"].T, dh, e_dh)
    for k, name in enumerate(("mu", "logvar")):
        cols = slice(k * Z, (k + 1) * Z)
        g[name + ".weight"] = (wh[:, cols], ewh[:, cols])
        g[name + ".bias"] = bias_grad(dh[:, cols], e_dh[:, cols])
    Wh = np.concatenate([w["mu.weight"], w["logvar.weight"]], axis=1)
    d1, e_d1 = product(dh, e_dh, Wh.T, 0.0)
    d1, e_d1 = masked(d1, e_d1, t["p1"], t["e_h1"])
    weight_and_bias("encoder.0", X.astype(np.float64), 0.0, d1, e_d1)
    return g


@pytest.fixture
def bf16_route_restored():
    yield
    _core.set_bf16_route("auto")


def test_encode_matches_the_bf16_twin(kernel_set):
    m, X, eps, w = model_and_data()
    t = twin_forward(w, X, eps)
    for precision in ("bf16", None):
        if precision is None:
            m = vaefast.VAE(D, hidden=(H1,), latent_dim=Z, decoder_hidden=(H2,),
                            likelihood="gaussian", seed=3, precision="bf16")
        mu, lv = m.encode(X, precision=precision)
        assert np.all(np.abs(mu - t["mu"]) <= t["e_mu"])
        assert np.all(np.abs(lv - t["lv"]) <= t["e_lv"])
    mu32, _ = m.encode(X, precision="fp32")  # float32 products fall outside the bounds
    assert np.mean(np.abs(mu32 - t["mu"]) > t["e_mu"]) > 0.5


def test_elbo_and_decode_match_the_bf16_twin(kernel_set):
    m, X, eps, w = model_and_data()
    t = twin_forward(w, X, eps)
    want, bound = twin_elbo(t, X)
    got = m.elbo(X, eps=eps, precision="bf16")
    assert np.all(np.abs(got - want) <= bound), np.max(np.abs(got - want) / bound)
    assert np.mean(np.abs(m.elbo(X, eps=eps) - want) > bound) > 0.5
    zc = t["z"].astype(np.float32)  # decode from given z: the decoder alone
    y, ey, _ = layer(t["z"], 0.0, w["decoder.0.weight"], w["decoder.0.bias"], True)
    y, ey, _ = layer(y, ey, w["output.weight"], w["output.bias"], False)
    assert np.all(np.abs(m.decode(zc, precision="bf16") - y) <= ey)


def test_one_step_gradients_match_the_bf16_twin(kernel_set):
    m, X, eps, w = model_and_data()
    t = twin_forward(w, X, eps)
    want = twin_grads(w, t, X, eps)
    loss, got = m.loss_and_grad(X, eps, precision="bf16")
    _, got32 = m.loss_and_grad(X, eps, precision="fp32")
    assert set(got) == set(want)
    outside32 = []
    for name, (v, e) in want.items():
        err = np.abs(got[name] - v)
        assert np.all(err <= e), (name, float(np.max(err / e)))
        outside32.append(np.mean(np.abs(got32[name] - v) > e))
    # the float32 step's weight gradients fall outside the bf16 bounds (the
    # bias gradients are float32 sums on both paths)
    assert np.mean(np.abs(got32["output.weight"] - want["output.weight"][0])
                   > want["output.weight"][1]) > 0.3
    elbo, eb = twin_elbo(t, X)
    assert abs(loss + elbo.mean()) <= eb.mean() + 1e-6 * abs(loss)


def data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    proto = rng.random((8, 64)) < 0.3
    return (proto[rng.integers(0, 8, n)] ^ (rng.random((n, 64)) < 0.05)).astype(np.float32)


def fit_weights(precision, threads=None, epochs=2, batch_size=64, hidden=(96,)):
    m = vaefast.VAE(64, hidden=hidden, latent_dim=6, seed=11)
    if threads is not None:
        vaefast.set_num_threads(threads)
    h = m.fit(data(), epochs=epochs, batch_size=batch_size, precision=precision,
              progress=False)
    return m, h


def test_bf16_fit_learns_and_stays_close_to_fp32():
    m16, h16 = fit_weights("bf16", epochs=8)
    m32, h32 = fit_weights("fp32", epochs=8)
    l16, l32 = h16.history["loss"], h32.history["loss"]
    assert l16[-1] < 0.8 * l16[0]  # it learns
    # same seed, same batches and noise: only the products' rounding differs
    assert abs(l16[-1] - l32[-1]) <= 0.02 * abs(l32[-1])
    w16, w32 = m16.get_weights(), m32.get_weights()
    assert any(not np.array_equal(w16[k], w32[k]) for k in w16)  # bf16 really ran
    X = data(256, seed=1)
    assert abs(m16.elbo(X, seed=0).mean() - m32.elbo(X, seed=0).mean()) <= 0.02 * abs(
        m32.elbo(X, seed=0).mean())


@pytest.mark.parametrize("threads", [2, 3])
def test_bf16_fit_is_bit_identical_for_any_thread_count(threads_setting, threads):
    # batch 256 and 1024-wide layers: big enough that each product uses every thread
    one, _ = fit_weights("bf16", threads=1, epochs=1, batch_size=256, hidden=(1024,))
    many, _ = fit_weights("bf16", threads=threads, epochs=1, batch_size=256, hidden=(1024,))
    for k, v in one.get_weights().items():
        np.testing.assert_array_equal(v.view(np.uint32), many.get_weights()[k].view(np.uint32))


ROUTE_PAIRS = [
    pytest.param("emulated", "native", marks=pytest.mark.skipif(
        not NATIVE, reason="this CPU has no AVX512_BF16 or AArch64 BF16: only the emulation runs")),
    pytest.param("amx_emulated", "amx", marks=pytest.mark.skipif(
        not AMX, reason="no AMX-BF16 for this process: only its emulation runs")),
]


@pytest.mark.parametrize("emulation,instruction", ROUTE_PAIRS)
def test_emulated_route_fits_the_same_bits(bf16_route_restored, emulation, instruction):
    fits = {}
    for route in (emulation, instruction):
        _core.set_bf16_route(route)
        m, _ = fit_weights("bf16", epochs=1, batch_size=128, hidden=(40,))
        fits[route] = m.get_weights()
    for k, v in fits[emulation].items():
        np.testing.assert_array_equal(v.view(np.uint32), fits[instruction][k].view(np.uint32))


@pytest.mark.parametrize("bad", ["fp16", "BF16", "", 16, None])
def test_precision_errors_name_the_argument(bad):
    with pytest.raises(ValueError, match="precision"):
        vaefast.VAE(8, precision=bad)
    m = vaefast.VAE(8, hidden=(4,), latent_dim=2)
    X = np.zeros((3, 8), dtype=np.float32)
    if bad is None:  # per call, None means the model's precision
        return
    calls = [lambda: m.encode(X, precision=bad), lambda: m.elbo(X, precision=bad),
             lambda: m.decode(np.zeros((3, 2)), precision=bad),
             lambda: m.sample(3, precision=bad), lambda: m.loss_and_grad(X, precision=bad),
             lambda: m.fit(X, epochs=1, precision=bad, progress=False)]
    for call in calls:
        with pytest.raises(ValueError, match="precision"):
            call()


def test_save_and_load_keep_the_precision(tmp_path):
    X = data(32)
    m = vaefast.VAE(64, hidden=(16,), latent_dim=3, precision="bf16")
    assert m.get_config()["precision"] == "bf16" and "precision='bf16'" in repr(m)
    assert "precision" not in vaefast.VAE(64).get_config()  # fp32 files stay as they were
    for fmt in ("npz", "safetensors"):
        path = tmp_path / f"m.{fmt}"
        m.save(path, format=fmt)
        back = vaefast.VAE.load(path)
        assert back.precision == "bf16"
        # the loaded model runs bf16 by default: the same bits as an explicit bf16 call
        np.testing.assert_array_equal(back.encode(X)[0], m.encode(X, precision="bf16")[0])
        assert not np.array_equal(back.encode(X)[0], back.encode(X, precision="fp32")[0])


def test_conditional_layer_adds_two_bf16_products(kernel_set):
    # a conditional layer reads [x | c] as two products, c·W_c then x·W_x
    # accumulated (csrc/gemm_bf16_layers.c: float32 add, then bias)
    C = 3
    m = vaefast.VAE(D, hidden=(), latent_dim=Z, n_conditions=C, likelihood="gaussian", seed=5)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((B, D)).astype(np.float32)
    c = rng.standard_normal((B, C)).astype(np.float32)
    w = {k: v.astype(np.float64) for k, v in m.get_weights().items()}
    for name, got in zip(("mu", "logvar"), m.encode(X, c, precision="bf16")):
        W, b = w[name + ".weight"], w[name + ".bias"]
        px, ex = product(X, 0.0, W[:D], 0.0)
        pc, ec = product(c, 0.0, W[D:], 0.0)
        want = px + pc + b
        bound = ex + ec + 2 * U * (np.abs(px) + np.abs(pc) + np.abs(b))
        assert np.all(np.abs(got - want) <= bound), name
        got32 = m.encode(X, c, precision="fp32")[0 if name == "mu" else 1]
        assert np.mean(np.abs(got32 - want) > bound) > 0.5


def test_conditional_bf16_fit_learns_and_is_thread_count_free(threads_setting):
    rng = np.random.default_rng(2)
    X, c = data(384), rng.random((384, 2)).astype(np.float32)
    fits = []
    for threads in (1, 2):
        vaefast.set_num_threads(threads)
        m = vaefast.VAE(64, hidden=(300,), latent_dim=4, n_conditions=2, seed=4)
        h = m.fit(X, c=c, epochs=4, batch_size=128, precision="bf16", progress=False)
        assert h.history["loss"][-1] < 0.9 * h.history["loss"][0]
        fits.append(m.get_weights())
    for k, v in fits[0].items():
        np.testing.assert_array_equal(v.view(np.uint32), fits[1][k].view(np.uint32))


def _bf16_fit(route, threads, X, hidden, seed, epochs):
    """The weights after a bf16 fit of 50-row batches on `route`."""
    _core.set_bf16_route(route)
    vaefast.set_num_threads(threads)
    m = vaefast.VAE(X.shape[1], hidden=(hidden,), latent_dim=5, seed=seed)
    m.fit(X, epochs=epochs, batch_size=50, precision="bf16", progress=False)
    return m.get_weights()


def _assert_amx_gives_the_emulations_bits(threads, X, hidden, seed, epochs=1, route="amx"):
    """The AMX (or VDPBF16PS: route "native") route and its scalar emulation
    (which packs every operand of every product itself) train the same
    weights, bit for bit."""
    got = _bf16_fit(route, threads, X, hidden, seed, epochs)
    oracle = _bf16_fit({"amx": "amx_emulated", "native": "emulated"}[route], threads, X,
                       hidden, seed, epochs)
    for k, v in got.items():
        np.testing.assert_array_equal(v.view(np.uint32), oracle[k].view(np.uint32))


def _odd_shapes(features):
    """Rows whose width, with hidden 37 and batch 50, is not a multiple of 16 or 32."""
    return np.tile(data(300, seed=4), 2)[:, :features]


@pytest.mark.skipif(not AMX, reason="no AMX-BF16 for this process: the packed-once output "
                    "gradient is the AMX route's")
@pytest.mark.parametrize("features", [40, 64, 100])
def test_output_gradient_packed_once_gives_the_emulations_bits(bf16_route_restored,
                                                               threads_setting, features):
    # One thread: the weight gradient's packing of d also writes the input
    # gradient's packed op(A) (vae_layer_grad.c). The oracle: the scalar AMX
    # emulation, which packs each product's operands itself. Widths 40, 64
    # and 100 give an odd last 16-column group, whole 32-column steps and a
    # part-filled one; batch 50 leaves rows of the last 32-row block empty.
    _assert_amx_gives_the_emulations_bits(1, _odd_shapes(features), hidden=37, seed=3)


@pytest.mark.parametrize("route", [
    pytest.param("amx", marks=pytest.mark.skipif(
        not AMX, reason="no AMX-BF16 for this process: its route's packed weights do not run")),
    pytest.param("native", marks=needs_native_packing)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_weights_packed_by_the_optimizer_give_the_emulations_bits(bf16_route_restored,
                                                                  threads_setting, threads,
                                                                  route):
    # Inside a training call the Adam step packs the 1000 x 100 encoder
    # layer and the 100 x 1000 decoder output for the next step's products
    # (vae_packed_weights.c), in the layout of the route's driver; 12 steps
    # of 50 rows run as calls of 1, 4 and 7 steps, so most steps read them.
    # The oracle: the route's scalar emulation, whose products pack every
    # operand from float32 themselves. Widths 1000 and 100 leave part-filled
    # 16-row groups, 16- and 32-column groups and odd pair counts in both
    # packed layouts.
    X = (np.random.default_rng(6).random((600, 1000)) < 0.2).astype(np.float32)
    _assert_amx_gives_the_emulations_bits(threads, X, hidden=100, seed=8, epochs=2,
                                          route=route)


@needs_native_packing
@pytest.mark.parametrize("hidden", [70, 90])
def test_native_packed_weights_with_odd_rows(bf16_route_restored, threads_setting, hidden):
    # Odd and part-filled shapes of the VDPBF16PS route's packed weights
    # (packed from 65,536 entries of W): 1001 inputs (an odd pair count, a
    # last 16-row group of 9 rows, a last panel of 9 columns) and 70 or 90
    # hidden units (a last 32-row panel of Wᵀ whose second half is all pad,
    # or part-filled).
    X = (np.random.default_rng(7).random((300, 1001)) < 0.2).astype(np.float32)
    _assert_amx_gives_the_emulations_bits(2, X, hidden=hidden, seed=9, epochs=2,
                                          route="native")


@pytest.mark.skipif(not AMX, reason="no AMX-BF16 for this process: the mixed backward pair is "
                    "the AMX route's")
@pytest.mark.parametrize("features", [40, 64, 100])
def test_backward_pair_mixed_on_two_threads_gives_the_emulations_bits(bf16_route_restored,
                                                                      threads_setting,
                                                                      features):
    # Two threads: d is packed once, as the weight gradient's op(B) and the
    # input gradient's op(A), by a first team loop; then the input gradient
    # runs as one unit and the weight gradient as column units of one team
    # loop (vae_layer_grad.c, backward_mixed); odd widths give a last
    # column unit part-filled and part-filled op(A) steps. The oracle: the
    # scalar AMX emulation on two threads, which runs the two products side
    # by side, each packing its own operands.
    _assert_amx_gives_the_emulations_bits(2, _odd_shapes(features), hidden=37, seed=3)
