"""The bf16 GEMM (precision="bf16") against NumPy oracles, and the emulation
of VDPBF16PS against the instruction.

Oracle: the operands rounded to bf16 by NumPy here (frexp / rint, a method
independent of the C code's integer rounding), products summed in float64.
Tolerance: the GEMM adds the K products of each entry one at a time into a
float32 accumulator (two per VDPBF16PS, each add rounded once; the bf16
products themselves are exact in float32), so by the standard bound for
recursive summation |got − exact| <= γ_K·Σ_k|a_k·b_k| with γ_K = K·u/(1−K·u),
u = 2^-24. We assert that bound per entry (plus 1 ulp for the bias add); a
wrong pairing or a missing term (an error of order |a|·|b|) cannot pass,
and neither can unrounded float32 operands (their difference to the bf16
oracle is of order 2^-9·|a|·|b|).
"""

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import vaefast
from vaefast import _core, ops

U = 2.0**-24
NATIVE = _core.bf16_native_supported()
needs_native = pytest.mark.skipif(
    not NATIVE, reason="this CPU has no AVX512_BF16 (VDPBF16PS) or AArch64 BF16 (BFMLAL):"
                       " only the emulation runs")


def bf16_round(x):
    """float32 -> nearest bf16 value (ties to even) as float64: 8 significant
    bits, bf16's subnormal spacing 2^-133 below 2^-126, ±inf past the largest
    bf16 (the midpoint to the next power of two rounds up to inf)."""
    x = np.asarray(x, dtype=np.float64)
    _, e = np.frexp(x)  # x = m·2^e, 0.5 <= |m| < 1
    ulp = np.ldexp(1.0, np.maximum(e, -125) - 8)
    r = np.rint(x / ulp) * ulp
    return np.where(np.abs(r) >= 2.0**128, np.copysign(np.inf, x), r)


def oracle(a, b, trans_a=False, trans_b=False, bias=None, relu=False):
    A = bf16_round(a.T if trans_a else a)
    B = bf16_round(b.T if trans_b else b)
    exact = A @ B
    bound = gamma(A.shape[1]) * (np.abs(A) @ np.abs(B))
    if bias is not None:
        exact = exact + bias
        bound = bound + np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    if relu:
        exact = np.maximum(exact, 0.0)
    return exact, bound


def gamma(k):
    return k * U / (1 - k * U)


def run(a, b, trans_a=False, trans_b=False, bias=None, relu=False, impl="auto"):
    M = a.shape[1] if trans_a else a.shape[0]
    N = b.shape[0] if trans_b else b.shape[1]
    c = np.full((M, N), np.nan, dtype=np.float32)
    flag = _core.gemm_bf16(a, b, trans_a, trans_b, bias, relu, c, impl)
    return c, flag


SHAPES = [(1, 1, 1), (3, 5, 7), (12, 32, 2), (13, 33, 3), (37, 45, 31), (100, 40, 400),
          (32, 400, 784), (25, 784, 20), (97, 300, 255), (5, 0, 3), (0, 5, 3), (4, 6, 0)]


@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_matches_bf16_oracle(kernel_set, rng, M, N, K, trans):
    ta, tb = trans
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
    got, flag = run(a, b, ta, tb)
    assert not flag
    exact, bound = oracle(a, b, ta, tb)
    assert np.all(np.abs(got - exact) <= bound)


def test_strided_operands_and_out(rng):
    """Row slices are read in place (leading dimension > columns), and the
    result goes into the caller's strided `out`."""
    a = rng.standard_normal((30, 50)).astype(np.float32)[:, :37]
    b = rng.standard_normal((37, 30)).astype(np.float32)[:, :23]
    out = np.full((30, 28), 7.0, np.float32)
    got = ops.matmul(a, b, out=out[:, :23], precision="bf16")
    exact, bound = oracle(a, b)
    assert np.all(np.abs(got - exact) <= bound)
    np.testing.assert_array_equal(out[:, :23], got)
    assert np.all(out[:, 23:] == 7.0)  # nothing written past the view


@given(M=st.integers(1, 70), N=st.integers(1, 70), K=st.integers(0, 70),
       ta=st.booleans(), tb=st.booleans(), seed=st.integers(0, 2**16))
def test_gemm_random_shapes(M, N, K, ta, tb, seed):
    """Every tile edge (rows mod 12 and 4, columns mod 32, 16 and 8, odd K):
    the oracle's bound, and where the instruction exists the same bits as
    the emulation."""
    r = np.random.default_rng(seed)
    a = r.standard_normal((K, M) if ta else (M, K)).astype(np.float32)
    b = r.standard_normal((N, K) if tb else (K, N)).astype(np.float32)
    got, flag = run(a, b, ta, tb, impl="emulated")
    assert not flag
    exact, bound = oracle(a, b, ta, tb)
    assert np.all(np.abs(got - exact) <= bound)
    if NATIVE:
        nat, _ = run(a, b, ta, tb, impl="native")
        np.testing.assert_array_equal(got.view(np.uint32), nat.view(np.uint32))


@pytest.mark.parametrize("relu", [False, True])
def test_linear_epilogue(rng, relu):
    x = rng.standard_normal((50, 70)).astype(np.float32)
    W = rng.standard_normal((70, 45)).astype(np.float32)
    b = rng.standard_normal(45).astype(np.float32)
    got = ops.linear(x, W, b, activation="relu" if relu else None, precision="bf16")
    exact, bound = oracle(x, W, bias=b, relu=relu)
    assert np.all(np.abs(got - exact) <= bound)
    if relu:
        assert np.all(got >= 0) and np.any(got == 0)


@pytest.mark.parametrize("relu", [False, True])
def test_linear_backward(kernel_set, rng, relu):
    """dW = xᵀ·dz and dx = dz·Wᵀ against the bf16 oracle (the transposed
    operand routes of packing), db a float32 column sum (float64 within one
    rounding)."""
    x = rng.standard_normal((45, 30)).astype(np.float32)
    W = rng.standard_normal((30, 21)).astype(np.float32)
    dy = rng.standard_normal((45, 21)).astype(np.float32)
    y = rng.standard_normal((45, 21)).astype(np.float32) if relu else None
    dx, dW, db = ops.linear_backward(x, W, dy, y, "relu" if relu else None, precision="bf16")
    dz = dy * (y > 0) if relu else dy
    exact, bound = oracle(x, dz, trans_a=True)
    assert np.all(np.abs(dW - exact) <= bound)
    exact, bound = oracle(dz, W, trans_b=True)
    assert np.all(np.abs(dx - exact) <= bound)
    col = dz.astype(np.float64).sum(axis=0)
    assert np.all(np.abs(db - col) <= np.spacing(np.abs(col).astype(np.float32)))
    assert ops.linear_backward(x, W, dy, y, "relu" if relu else None, need_dx=False,
                               precision="bf16")[0] is None


def test_linear_backward_rejects_masked_nan(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    W = rng.standard_normal((3, 2)).astype(np.float32)
    dy = rng.standard_normal((4, 2)).astype(np.float32)
    y = -np.ones((4, 2), np.float32)  # the mask is 0 everywhere
    dy[1, 1] = np.inf
    with pytest.raises(ValueError, match="^dy contains NaN"):
        ops.linear_backward(x, W, dy, y, "relu", precision="bf16")
    with pytest.raises(ValueError, match="precision"):
        ops.linear_backward(x, W, dy, y, "relu", precision="fp16")


def test_operands_really_are_bf16(rng):
    """Against the float32 product the bf16 result is off by ~2^-9 relative:
    the bound above separates the two, so rounding is not skipped."""
    a = rng.standard_normal((64, 256)).astype(np.float32)
    b = rng.standard_normal((256, 64)).astype(np.float32)
    got = ops.matmul(a, b, precision="bf16")
    exact32 = a.astype(np.float64) @ b
    assert np.max(np.abs(got - exact32) / (np.abs(a) @ np.abs(b))) > 50 * gamma(256)


def test_rounding_is_nearest_even(kernel_set):
    """A @ I returns round_bf16(A) exactly (one nonzero exact product per
    entry): ties, carries into the exponent, bf16 subnormals flushed to zero
    by the instruction's DAZ, and the NumPy oracle's rounding."""
    bits = np.array([0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001, 0x3FFF8000,
                     0xBF808000, 0xBF818000, 0x7F7F7FFF, 0x00800000, 0x00FF8000,
                     0x3F800000, 0x80000000, 0x12345678, 0x4049ABCD], dtype=np.uint32)
    a = bits.view(np.float32).reshape(1, -1)
    eye = np.eye(a.shape[1], dtype=np.float32)
    got, flag = run(a, eye)
    assert not flag
    want = bf16_round(a)
    want[np.abs(want) < 2.0**-126] = 0.0  # bf16 subnormal -> 0 (DAZ)
    np.testing.assert_array_equal(got, want.astype(np.float32))
    # the tie 0x3F808000 goes down to even 0x3F80, 0x3F818000 up to 0x3F82
    assert got[0, 0] == 1.0 and got[0, 1].view(np.uint32) == 0x3F820000


@pytest.mark.parametrize("K", [1, 64, 95])
def test_nan_rounds_to_quiet_nan(kernel_set, K):
    """A NaN operand stays NaN through the rounding (quieted, sign and top
    payload kept) on the scalar (K = 1) and vector packing paths; being
    the first NaN every entry meets, its bits are what every entry holds."""
    a = np.ones((2, K), np.float32)
    a[:, 0] = np.array([0xFF812345, 0x7FA00001], np.uint32).view(np.float32)
    c, flag = run(a, np.eye(K, 3, dtype=np.float32))
    assert flag
    want = np.array([0xFFC10000, 0x7FE00000], np.uint32)  # (u >> 16 | 0x40) << 16
    np.testing.assert_array_equal(c.view(np.uint32), np.repeat(want[:, None], 3, axis=1))


def test_rounding_on_the_vector_path(kernel_set, rng):
    """Ties and carries spread over a row of 96 (the avx512 set packs rows
    of A 32 floats at a time): A @ I is round_bf16(A) exactly."""
    low = rng.choice(np.array([0x8000, 0x7FFF, 0x8001, 0x0000, 0xFFFF], np.uint32), (3, 96))
    high = rng.integers(0x3000, 0x5000, (3, 96)).astype(np.uint32) << 16
    a = (high | low).astype(np.uint32).view(np.float32)
    got, flag = run(a, np.eye(96, dtype=np.float32))
    assert not flag
    np.testing.assert_array_equal(got, bf16_round(a).astype(np.float32))


def test_overflow_to_inf_is_flagged():
    """float32 values above bf16's largest round to inf: the product is
    flagged (and Python names it an overflow, all inputs being finite)."""
    a = np.array([[3.4e38], [3.3e38]], dtype=np.float32)  # bf16 max ~3.3895e38
    one = np.ones((1, 1), np.float32)
    c, flag = run(a, one)
    assert flag and c[0, 0] == np.inf and np.isfinite(c[1, 0])
    with pytest.raises(vaefast.Float32OverflowError):
        ops.matmul(a, one, precision="bf16")
    c, flag = run(a[1:], one)
    assert not flag


@pytest.mark.parametrize("name,bad", [("x", "x"), ("W", "W"), ("b", "b")])
def test_nonfinite_inputs_named(rng, name, bad):
    x = rng.standard_normal((8, 6)).astype(np.float32)
    W = rng.standard_normal((6, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    {"x": x, "W": W, "b": b}[bad].flat[3] = np.nan
    with pytest.raises(ValueError, match=f"^{name} contains NaN"):
        ops.linear(x, W, b, precision="bf16")


def test_precision_argument():
    a = np.ones((2, 3), np.float32)
    for bad in ("bf32", "BF16", None, 16):
        with pytest.raises(ValueError, match="precision"):
            ops.matmul(a, a.T, precision=bad)
        with pytest.raises(ValueError, match="precision"):
            ops.linear(a, a.T, precision=bad)
    np.testing.assert_array_equal(ops.matmul(a, a.T, precision="fp32"), ops.matmul(a, a.T))


def test_shapes_checked():
    with pytest.raises(ValueError, match="inner dimensions"):
        ops.matmul(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32), precision="bf16")
    with pytest.raises(ValueError, match="features"):
        ops.linear(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32), precision="bf16")


@pytest.mark.parametrize("M,K,N", [(300, 500, 200),
                                   # op(A) over half an L2: blocks pack their own A panels
                                   (1001, 784, 400)])
def test_thread_count_does_not_change_bits(rng, M, K, N):
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    before = vaefast.get_num_threads()
    try:
        out = []
        for threads in (1, 2, 3):
            vaefast.set_num_threads(threads)
            out.append(ops.matmul(a, b, precision="bf16").view(np.uint32))
    finally:
        vaefast.set_num_threads(before)
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(out[0], out[2])


def test_cpu_features_report_bf16():
    f = vaefast.cpu_features()
    assert "avx512_bf16" in f and "bf16" in f
    assert NATIVE == ((f["avx512_bf16"] and "avx512" in vaefast.supported_isas())
                      or (f["bf16"] and "neon" in vaefast.supported_isas()))
    if f["avx512_bf16"]:
        assert f["os_avx512"]  # detection includes the OS check
    # the automatic route (AMX first: tests/test_bf16_amx.py), unless
    # VAEFAST_BF16 fixed one
    amx = _core.bf16_amx_supported()
    auto = ("native" if vaefast.isa() == "neon" and NATIVE
            else "emulated" if vaefast.isa() != "avx512"
            else "amx" if amx else "native" if NATIVE else "emulated")
    forced = os.environ.get("VAEFAST_BF16", "").strip().lower()
    assert _core.bf16_auto_impl() == (forced if forced not in ("", "auto") else auto)


# --------------------------------------- the emulation of one VDPBF16PS lane
def bits(x):
    return np.uint32(np.float32(x).view(np.uint32))


def bf(x):
    """bf16 bits of a float32 whose low 16 bits are zero"""
    u = int(bits(x))
    assert u & 0xFFFF == 0
    return u >> 16


def pair(lo, hi):
    return (hi << 16) | lo


ONE, MINUS_ONE, INF, NINF, QNAN = 0x3F80, 0xBF80, 0x7F80, 0xFF80, 0x7FC0
# (acc bits, a pair, b pair, expected bits, why): expectations follow from the
# rules in csrc/isa/vec_bf16.h (hi pair first, one rounding per step, DAZ,
# FTZ judged after rounding, NaN order a, b, acc).
EDGE = [
    (bits(1.0), pair(ONE, ONE), pair(ONE, ONE), bits(3.0), "1 + 1·1 + 1·1"),
    # hi first: 1 + 2^-24 is a tie (to 1), then + 2^-24 ties to 1 again; the
    # lo-first or fused order would give 1 + 2^-23
    (bits(1.0), pair(bf(2.0**-12), bf(2.0**-12)), pair(bf(2.0**-12), bf(2.0**-12)),
     bits(1.0), "two half-ulp steps round twice"),
    # cancellation: 2^30 − 2^30 exactly, then + 1
    (bits(2.0**30), pair(ONE, bf(2.0**15)), pair(ONE, bf(-(2.0**15))), bits(1.0),
     "exact cancellation, then the small term"),
    # FTZ after rounding with unbounded exponent: 2^-126 − 2^-150 is exact in
    # 24 bits and tiny -> +0 (the subnormal grid would round it to 2^-126)
    (0x00800000, pair(0, bf(2.0**-75)), pair(0, bf(-(2.0**-75))), 0x00000000,
     "tiny after rounding flushes"),
    # 2^-126 − 2^-151 rounds (tie, to even) up to 2^-126: not tiny
    (0x00800000, pair(0, bf(2.0**-75)), pair(0, bf(-(2.0**-76))), 0x00800000,
     "rounds up to the smallest normal"),
    (0x00000001, pair(0, ONE), pair(0, 0), 0x00000000, "subnormal acc is zero (DAZ)"),
    (bits(0.0), pair(0x0001, 0), pair(ONE, 0), 0x00000000, "subnormal bf16 is zero (DAZ)"),
    (bits(1.0), pair(0, INF), pair(0, 0x0001), 0xFFC00000, "inf times a subnormal (=0): NaN"),
    (0x80000000, pair(0x8000, 0x8000), pair(0, 0), 0x80000000, "-0 + -0 + -0 = -0"),
    (0x80000000, pair(0, 0), pair(0, 0), 0x00000000, "-0 + +0 = +0"),
    (bits(1.0), pair(0, INF), pair(0, 0), 0xFFC00000, "inf·0: default NaN"),
    (bits(-np.inf), pair(0, INF), pair(0, ONE), 0xFFC00000, "-inf + inf: default NaN"),
    (bits(1.0), pair(0, INF), pair(0, MINUS_ONE), bits(-np.inf), "1 + inf·-1"),
    (0x7F7FFFFF, pair(0, 0x7F7F), pair(0, 0x7F7F), bits(np.inf), "overflow to inf"),
    (0x7FC11111, pair(0, 0x7FC2), pair(0, 0x7FC3), 0x7FC20000, "a's NaN first"),
    (bits(1.0), pair(0, ONE), pair(0, 0x7F83), 0x7FC30000, "b's NaN, quieted"),
    (0x7F811111, pair(0, ONE), pair(0, ONE), 0x7FC11111, "acc's signalling NaN, quieted"),
    (bits(1.0), pair(0x7FC4, 0x7FC2), pair(ONE, ONE), 0x7FC40000,
     "lo product's NaN wins over the NaN the hi step left"),
    (0x7FC11111, pair(0, INF), pair(0, 0), 0x7FC11111, "acc NaN wins over inf·0"),
]


@pytest.mark.parametrize("impl", ["emulated", pytest.param("native", marks=needs_native)])
def test_dot2_edge_cases(impl):
    acc = np.array([e[0] for e in EDGE], dtype=np.uint32).view(np.float32)
    a = np.array([e[1] for e in EDGE], dtype=np.uint32)
    b = np.array([e[2] for e in EDGE], dtype=np.uint32)
    out = np.empty_like(acc)
    _core.bf16_dot2_lanes(acc, a, b, out, impl)
    got = out.view(np.uint32)
    for (_, _, _, want, why), g in zip(EDGE, got):
        assert g == want, f"{why}: got {g:#010x}, want {want:#010x}"


def random_lanes(rng, n):
    """Random bits with every class over-represented: exponents near the
    ends (subnormals, inf/NaN, overflow) and cancelling accumulators."""
    def bf16s(size):
        sign = rng.integers(0, 2, size) << 15
        kind = rng.integers(0, 8, size)
        exp = np.select([kind == 0, kind == 1, kind == 2, kind == 3],
                        [0, 255, rng.integers(1, 8, size), rng.integers(248, 255, size)],
                        rng.integers(100, 155, size))
        return (sign | (exp << 7) | rng.integers(0, 128, size)).astype(np.uint32)
    a = bf16s(n) | (bf16s(n) << 16)
    b = bf16s(n) | (bf16s(n) << 16)
    acc = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    # a third: acc ≈ −(a.hi·b.hi), so the sum cancels to a few bits
    k = np.arange(n) % 3 == 0
    hi = lambda v: ((v >> 16) << 16).view(np.float32).astype(np.float64)  # noqa: E731
    with np.errstate(all="ignore"):
        acc[k] = (-(hi(a) * hi(b)) * (1 + rng.integers(-32, 32, n) * 2.0**-23))[k]
    return acc.astype(np.float32), a, b


@needs_native
def test_emulation_matches_instruction_bit_for_bit(rng):
    for _ in range(4):
        acc, a, b = random_lanes(rng, 250_000)
        out_e = np.empty_like(acc)
        out_n = np.empty_like(acc)
        _core.bf16_dot2_lanes(acc, a, b, out_e, "emulated")
        _core.bf16_dot2_lanes(acc, a, b, out_n, "native")
        diff = np.flatnonzero(out_e.view(np.uint32) != out_n.view(np.uint32))
        assert diff.size == 0, (f"{diff.size} lanes differ, first: acc={acc[diff[0]]!r} "
                                f"a={a[diff[0]]:#x} b={b[diff[0]]:#x}")


def assert_native_equals_emulated(a, b, ta, tb, **kw):
    """The product through the instruction and through the emulation: the
    same non-finite flag and the same bits; returns the emulated result."""
    ce, fe = run(a, b, ta, tb, impl="emulated", **kw)
    cn, fn = run(a, b, ta, tb, impl="native", **kw)
    assert fe == fn
    np.testing.assert_array_equal(ce.view(np.uint32), cn.view(np.uint32))
    return ce


@needs_native
@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("M,N,K", [(37, 45, 31), (128, 400, 784), (1, 40, 400), (50, 3, 2),
                                   (13, 17, 801),
                                   (521, 260, 512)])  # plain op(A) > 512 KiB: packed blocks
def test_gemm_emulated_equals_native(rng, M, N, K, trans):
    """Whole products, with entries over a wide exponent range (tiny products
    that flush, huge ones that cancel, float32 subnormals that the packing
    rounds) and ReLU + bias; each operand plain or transposed, as the
    layers' forward, weight-gradient and input-gradient products take them."""
    ta, tb = trans
    scale = np.exp2(rng.integers(-140, 40, (M, K))).astype(np.float32)
    a = (rng.standard_normal((M, K)) * scale).astype(np.float32)
    b = (rng.standard_normal((K, N)) * np.exp2(rng.integers(-140, 40, (K, N)))).astype(np.float32)
    a, b = (np.ascontiguousarray(a.T) if ta else a), (np.ascontiguousarray(b.T) if tb else b)
    bias = rng.standard_normal(N).astype(np.float32)
    assert_native_equals_emulated(a, b, ta, tb, bias=bias, relu=True)


SPECIAL_BITS = np.array([0x7FA00001, 0xFF812345, 0x7F800000, 0xFF800000, 0x3F808000,
                         0x3F818000, 0x7F7FFFFF, 0xFF7F8000, 0x80000000], np.uint32)


@needs_native
@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True), (True, True)])
def test_packing_by_the_instruction_equals_emulation(rng, trans):
    """The VDPBF16PS route rounds its operands with VCVTNE2PS2BF16, which
    flushes float32 subnormals where the emulation keeps them: a vector
    with a subnormal must take the emulated rounding. Operands with NaN
    payloads, infinities, ties, overflow to inf and signed zeros in some
    rows, float32 subnormals in others (and both in a few), on every
    packing path (each operand plain or transposed): the same bits and
    the same non-finite flag as the emulation."""
    ta, tb = trans
    M, N, K = 29, 70, 66

    def operand(rows, cols):
        x = rng.standard_normal((rows, cols)).astype(np.float32)
        special = rng.random((rows, cols)) < 0.02
        x[special] = rng.choice(SPECIAL_BITS, special.sum()).view(np.float32)
        sub = (rng.random((rows, cols)) < 0.05) & (np.arange(rows)[:, None] % 3 == 0)
        x[sub] = (rng.integers(1, 1 << 23, sub.sum()).astype(np.uint32)
                  | (rng.integers(0, 2, sub.sum()).astype(np.uint32) << 31)).view(np.float32)
        return x

    a, b = operand(M, K), operand(K, N)
    a, b = (np.ascontiguousarray(a.T) if ta else a), (np.ascontiguousarray(b.T) if tb else b)
    assert_native_equals_emulated(a, b, ta, tb)
    # float32 subnormals just below 2^-126 round up to it (a normal bf16)
    # in the emulation; the instruction would flush them to 0. Through
    # X @ I and I @ X every entry is its operand's rounding, on each path.
    near = (0x007F8000 + rng.integers(0, 0x8000, (M, K))).astype(np.uint32)
    near |= rng.integers(0, 2, (M, K)).astype(np.uint32) << 31
    x = np.where(rng.random((M, K)) < 0.3, near.view(np.float32),
                 rng.standard_normal((M, K)).astype(np.float32))
    eye = np.eye(K, dtype=np.float32)
    x_op = np.ascontiguousarray(x.T) if ta else x
    got, _ = run(x_op, eye, ta, tb, impl="native")
    np.testing.assert_array_equal(got, bf16_round(x).astype(np.float32))
    got, _ = run(np.eye(M, dtype=np.float32), np.ascontiguousarray(x.T) if tb else x, ta, tb,
                 impl="native")
    np.testing.assert_array_equal(got, bf16_round(x).astype(np.float32))
    # without NaN and inf: the finite entries' bits, not only the NaNs'
    a_fin = np.where(np.isfinite(a), a, np.float32(-2.0))
    b_fin = np.where(np.isfinite(b), b, np.float32(1.5))
    assert np.isfinite(assert_native_equals_emulated(a_fin, b_fin, ta, tb)).mean() > 0.5


def test_impl_argument():
    a = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match="impl"):
        _core.gemm_bf16(a, a, False, False, None, False, a.copy(), "fast")
    if not NATIVE:
        with pytest.raises(ValueError, match="AVX512_BF16"):
            _core.gemm_bf16(a, a, False, False, None, False, a.copy(), "native")
