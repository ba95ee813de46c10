"""The AMX route of the bf16 GEMM (csrc/isa/gemm_amx.c, impl="amx"), its
detection and its choice.

TDPBF16PS does not give VDPBF16PS's bits. Its order was found by
experiment on this project's Sapphire Rapids VM (docs/precision.md): per
instruction (32 k), the even-k and the odd-k products are summed into two
separate float32 sums from zero, one exact product at a time, then
C = C + (E + O); every add is rounded once to nearest even and flushed to
zero below 2^-126, and inputs below 2^-126 read as zero.
`tdpbf16ps_model` below is that order in NumPy (float64 with TwoSum and a
sticky bit, so each rounding to float32 is correct); the library's scalar
route "amx_emulated" must equal it (values: a zero's sign is not
compared), on every machine, and the instruction must give the
emulation's bits where AMX exists. Independently of the
order, the error against the float64 product of the bf16-rounded operands
must stay within the float32 recursive-summation bound γ_K·Σ_k|a_k·b_k|
(γ_K = K·u/(1 − K·u), u = 2^-24; measured at most 0.53·K·u·Σ|a·b|), plus
(2K + 1)·2^-126 for flushed values. A wrong pairing, a lost tile or
unrounded operands (an error of order 2^-9·|a·b|) fails both.
"""

import importlib.util
import multiprocessing
import os

import numpy as np
import pytest

import vaefast
from vaefast import _core, ops

# the bf16 rounding and γ_K of tests/test_bf16.py (one definition)
_spec = importlib.util.spec_from_file_location(
    "vaefast_test_bf16", os.path.join(os.path.dirname(__file__), "test_bf16.py"))
_bf16_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bf16_tests)
bf16_round, gamma = _bf16_tests.bf16_round, _bf16_tests.gamma

AMX = _core.bf16_amx_supported()
needs_amx = pytest.mark.skipif(
    not AMX, reason="no AMX-BF16 here (CPU, OS tile state, or Linux permission): "
                    "only the VDPBF16PS route and its emulation run")
TINY = 2.0**-126  # float32's smallest normal


def daz(x):
    return np.where(np.abs(x) < TINY, 0.0, x)


def oracle(a, b, trans_a=False, trans_b=False):
    A = daz(bf16_round(a.T if trans_a else a))
    B = daz(bf16_round(b.T if trans_b else b))
    K = A.shape[1]
    bound = gamma(K) * (np.abs(A) @ np.abs(B)) + (2 * K + 1) * TINY
    return A @ B, bound


def amx(a, b, trans_a=False, trans_b=False, bias=None, relu=False, impl="amx"):
    M = a.shape[1] if trans_a else a.shape[0]
    N = b.shape[0] if trans_b else b.shape[1]
    c = np.full((M, N), np.nan, np.float32)
    flag = _core.gemm_bf16(a, b, trans_a, trans_b, bias, relu, c, impl)
    return c, flag


def operands(rng, M, N, K, trans_a, trans_b, kind):
    """normal, wide (exponents over ±40 octaves, with bf16 subnormals), or
    cancel (the second half of k repeats the first with b negated)."""
    a = rng.standard_normal((M, K))
    b = rng.standard_normal((K, N))
    if kind == "wide":
        a *= np.exp2(rng.integers(-40, 40, a.shape))
        b *= np.exp2(rng.integers(-40, 40, b.shape))
        a.flat[::7] = 2.0**-130  # float32 and bf16 subnormals: read as 0
        b.flat[::11] = -(2.0**-128)
        a *= 2.0**-60  # many products near and below 2^-126
    elif kind == "cancel":
        h = K // 2
        a[:, h:2 * h] = a[:, :h]
        b[h:2 * h] = -b[:h] * (1 + 2.0**-7 * rng.standard_normal((h, N)))
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    return (np.ascontiguousarray(a.T) if trans_a else a,
            np.ascontiguousarray(b.T) if trans_b else b)


SHAPES = [(1, 1, 1), (1, 1, 2), (3, 5, 7), (16, 16, 32), (17, 33, 33), (31, 15, 65),
          (32, 32, 64), (40, 70, 100), (129, 257, 95), (32, 400, 784), (100, 40, 400),
          (5, 0, 3), (0, 5, 3), (4, 6, 0)]


@needs_amx
@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("kind", ["normal", "wide", "cancel"])
def test_amx_within_the_summation_bound(M, N, K, trans, kind):
    rng = np.random.default_rng(M * 1000 + N * 10 + K)
    a, b = operands(rng, M, N, K, *trans, kind)
    got, flag = amx(a, b, *trans)
    assert not flag
    exact, bound = oracle(a, b, *trans)
    assert np.all(np.abs(got - exact) <= bound)


def add_rne_ftz(x, y):
    """x + y rounded once to float32 (nearest even, exponent unbounded), then
    flushed to a zero if below 2^-126; x, y float64 arrays (float32 values
    or exact bf16 products). TwoSum gives the float64 sum's error; a sticky
    last bit (round to odd) makes the final rounding to 24 bits correct."""
    s = x + y
    bb = s - x
    err = (x - (s - bb)) + (y - bb)
    even = (s.view(np.int64) & 1) == 0
    s = np.where((err != 0) & even, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    tiny = np.abs(s) < TINY
    with np.errstate(over="ignore"):
        r = s.astype(np.float32).astype(np.float64)
        # below 2^-126: round to 24 bits at a scale where that is a normal
        # rounding, and keep only a result that reached 2^-126
        up = (s * 2.0**100).astype(np.float32).astype(np.float64) * 2.0**-100
    return np.where(tiny, np.where(np.abs(up) >= TINY, up, 0.0), r)


def tdpbf16ps_model(a, b):
    """C (M×N) of the AMX route, emulated: per TDPBF16PS (k in steps of
    32), two float32 sums start at 0: E over the even k, O over the odd k,
    each adding one exact product at a time (add_rne_ftz); then
    C = C + (E + O), both adds rounded the same way. Inputs below 2^-126
    read as 0."""
    A, B = daz(bf16_round(a)), daz(bf16_round(b))
    M, K = A.shape
    C = np.zeros((M, B.shape[1]))
    for k0 in range(0, K, 32):
        E = np.zeros_like(C)
        O = np.zeros_like(C)
        for k in range(k0, min(k0 + 32, K)):
            if k % 2 == 0:
                E = add_rne_ftz(E, A[:, k:k + 1] * B[k:k + 1])
            else:
                O = add_rne_ftz(O, A[:, k:k + 1] * B[k:k + 1])
        C = add_rne_ftz(C, add_rne_ftz(E, O))
    return C


ORDER_SHAPES = [(1, 1, 1), (1, 1, 2), (16, 16, 32), (17, 33, 33), (31, 15, 65),
                (40, 70, 100), (33, 45, 400)]


@pytest.mark.parametrize("M,N,K", ORDER_SHAPES)
@pytest.mark.parametrize("kind", ["normal", "wide", "cancel"])
def test_amx_emulation_follows_the_order(M, N, K, kind):
    """The scalar route "amx_emulated" (generic set, every CPU) against the
    order in NumPy, value for value (a zero's sign aside)."""
    rng = np.random.default_rng(M * 7919 + N * 31 + K)
    a, b = operands(rng, M, N, K, False, False, kind)
    got, _ = amx(a, b, impl="amx_emulated")
    np.testing.assert_array_equal(got.astype(np.float64), tdpbf16ps_model(a, b))


# The AMX driver's four schedules (amx_schedule in csrc/isa/gemm_amx.c):
# (32, 400, 784) a small op(A), units packing their own columns of op(B);
# (100, 40, 400) op(B) in cache, few row blocks; (300, 130, 150) many row
# blocks, units packing their own rows of op(A); (70, 1040, 520) op(B)
# packed past 1 MiB, units column block by column block.
SCHEDULE_SHAPES = [(32, 400, 784), (100, 40, 400), (300, 130, 150), (70, 1040, 520)]


@needs_amx
@pytest.mark.parametrize("M,N,K", ORDER_SHAPES + [(129, 257, 95)] + SCHEDULE_SHAPES)
@pytest.mark.parametrize("trans", [(False, False), (True, True)])
@pytest.mark.parametrize("kind", ["normal", "wide", "cancel"])
def test_amx_equals_its_emulation_bit_for_bit(M, N, K, trans, kind):
    """TDPBF16PS's order, found by experiment on this project's Xeon (and
    not the one of VDPBF16PS): within one instruction the even-k and the
    odd-k products go into two separate float32 sums, which are added
    together and then to the accumulator, every add rounded once (nearest
    even) and flushed below 2^-126. The instruction and its emulation give
    the same bits, epilogue included."""
    rng = np.random.default_rng(M * 7919 + N * 31 + K + 1)
    a, b = operands(rng, M, N, K, *trans, kind)
    bias = rng.standard_normal(N).astype(np.float32)
    got, flag = amx(a, b, *trans, bias=bias, relu=True)
    emu, emu_flag = amx(a, b, *trans, bias=bias, relu=True, impl="amx_emulated")
    assert flag == emu_flag
    np.testing.assert_array_equal(got.view(np.uint32), emu.view(np.uint32))


@needs_amx
@pytest.mark.parametrize("trans", [(False, False), (True, True), (True, False), (False, True)])
def test_amx_packing_keeps_the_emulated_rounding_of_subnormals(trans):
    """The AMX driver converts with VCVTNE2PS2BF16, which flushes float32
    subnormals to zero, while the emulation rounds them (those next to
    2^-126 up to it): vectors holding one are converted the emulated way,
    so the bits still equal the emulation's. Sparse subnormals (most
    vectors take the instruction), the ones that round up among them, the
    operands plain and transposed (the two ways pairs are formed)."""
    rng = np.random.default_rng(7)
    M, N, K = 40, 70, 100
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    edge = np.array([0x007FFFFF, 0x007F8000, 0x807FC000, 0x00000001, 0x803FFFFF],
                    np.uint32).view(np.float32)  # the first three round up to ±2^-126
    for m in (a, b):
        idx = rng.choice(m.size, 12, replace=False)
        m.flat[idx] = rng.choice(edge, 12)
    a, b = (np.ascontiguousarray(a.T) if trans[0] else a,
            np.ascontiguousarray(b.T) if trans[1] else b)
    got, flag = amx(a, b, *trans)
    emu, emu_flag = amx(a, b, *trans, impl="amx_emulated")
    assert flag == emu_flag == 0
    np.testing.assert_array_equal(got.view(np.uint32), emu.view(np.uint32))
    # the round-up is there to see: a row of 2^-126 edges times a column of 2^100
    e = np.zeros((1, 32), np.float32)
    e[0, 0] = edge[0]
    big = np.full((32, 1), 2.0**100, np.float32)
    got, _ = amx(e, big)
    assert got[0, 0] == np.float32(2.0**-126 * 2.0**100)


@needs_amx
def test_amx_is_not_the_vdpbf16ps_order():
    """The documented difference: k = 0 gives the accumulator 1 (the first
    TDPBF16PS, k < 32), then the pair k = 32, 33 holds the products 2^-24,
    2^-24 (the second). VDPBF16PS adds one product at a time (1 + 2^-24
    ties to 1, twice); TDPBF16PS sums the pair first (1 + 2^-23, exact)."""
    a = np.zeros((1, 34), np.float32)
    a[0, [0, 32, 33]] = [1, 2.0**-12, 2.0**-12]
    emu, _ = amx(a, a.T.copy(), impl="emulated")
    got, _ = amx(a, a.T.copy())
    assert emu[0, 0] == 1.0
    assert got[0, 0] == np.float32(1 + 2.0**-23)


@needs_amx
@pytest.mark.parametrize("relu", [False, True])
def test_linear_epilogue_on_amx(rng, relu):
    x = rng.standard_normal((70, 90)).astype(np.float32)
    W = rng.standard_normal((90, 45)).astype(np.float32)
    bias = rng.standard_normal(45).astype(np.float32)
    got, _ = amx(x, W, bias=bias, relu=relu)
    plain, _ = amx(x, W)
    want = plain + bias  # the epilogue's one float32 add, then max(v, 0)
    if relu:
        want = np.maximum(want, 0)
    np.testing.assert_array_equal(got, want)
    if relu:
        assert not np.any(np.signbit(got))  # -0 -> +0, as v > 0 ? v : 0


@needs_amx
@pytest.mark.parametrize("N", [4000, 45, 17, 128])
@pytest.mark.parametrize("relu", [False, True])
def test_epilogue_into_rows_off_the_line(rng, N, relu):
    """C whose rows start 4-60 bytes past a 64-byte line (a layer's weight
    gradient inside the flat buffer): the epilogue's line-aligned masked
    stores write exactly the row's w floats, the same values as into an
    aligned C, and nothing before or after the matrix."""
    M, K = 40, 70
    x = rng.standard_normal((M, K)).astype(np.float32)
    W = rng.standard_normal((K, N)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    want, _ = amx(x, W, bias=bias, relu=relu)
    for off in range(1, 16):
        buf = np.full(M * N + 64, np.nan, np.float32)
        start = (-buf.ctypes.data % 64) // 4 + off  # off floats past a line
        c = buf[start:start + M * N].reshape(M, N)
        assert c.ctypes.data % 64 == 4 * off
        flag = _core.gemm_bf16(x, W, False, False, bias, relu, c, "amx")
        assert not flag
        np.testing.assert_array_equal(c, want)
        assert np.all(np.isnan(buf[:start])) and np.all(np.isnan(buf[start + M * N:]))


@needs_amx
def test_nonfinite_flag_and_overflow():
    big = np.full((3, 4), 3e38, np.float32)  # four products of 3e38 overflow
    c, flag = amx(big, np.ones((4, 2), np.float32))
    assert flag and np.all(np.isinf(c))
    with pytest.raises(vaefast.Float32OverflowError):
        ops.matmul(np.full((2, 3), 1e38, np.float32), np.full((3, 2), 1e38, np.float32),
                   precision="bf16")


@needs_amx
@pytest.mark.parametrize("M,N,K", [(300, 600, 500), (100, 300, 400)] + SCHEDULE_SHAPES)
def test_thread_count_does_not_change_bits(rng, threads_setting, M, N, K):
    """Each of the driver's schedules (SCHEDULE_SHAPES) on 1 and 2 threads."""
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    vaefast.set_num_threads(1)
    one, _ = amx(a, b)
    vaefast.set_num_threads(2)
    two, _ = amx(a, b)
    np.testing.assert_array_equal(one.view(np.uint32), two.view(np.uint32))


def _child_product(queue):
    a = np.arange(64 * 40, dtype=np.float32).reshape(64, 40) / 997
    c, _ = amx(a, a.T.copy())
    queue.put(c)


@needs_amx
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child_inherits_the_permission():
    """Linux's tile-data permission is per process and kept across fork:
    a child runs TDPBF16PS without asking again and gets the same bits."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    p = ctx.Process(target=_child_product, args=(queue,))
    p.start()
    got = queue.get(timeout=120)
    p.join(timeout=120)
    assert p.exitcode == 0
    a = np.arange(64 * 40, dtype=np.float32).reshape(64, 40) / 997
    want, _ = amx(a, a.T.copy())
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_features_and_route_consistent():
    f = vaefast.cpu_features()
    assert "amx_tile" in f and "amx_bf16" in f
    assert AMX == (f["amx_bf16"] and "avx512" in _core.compiled_isas())
    if f["amx_bf16"]:
        assert f["amx_tile"]
    if not AMX:
        with pytest.raises(ValueError, match="AMX"):
            amx(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))


def test_dot2_lanes_have_no_amx_form():
    one = np.ones(1, np.float32)
    pair = np.ones(1, np.uint32)
    for route in ("amx_emulated", "amx" if AMX else "fast"):
        with pytest.raises(ValueError):
            _core.bf16_dot2_lanes(one, pair, pair, one.copy(), route)


ROUTE = "from vaefast import _core; print(_core.bf16_auto_impl())"


@pytest.mark.parametrize("route", ["emulated", "native", "amx", "amx_emulated"])
def test_vaefast_bf16_forces_a_route(route, run_python):
    supported = {"emulated": True, "native": _core.bf16_native_supported(), "amx": AMX,
                 "amx_emulated": True}
    r = run_python(ROUTE, VAEFAST_BF16=route)
    if supported[route]:
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == route
    else:
        assert r.returncode != 0 and "VAEFAST_BF16" in r.stderr


@pytest.mark.parametrize("bogus", ["fast", "avx512", "amx2"])
def test_vaefast_bf16_rejects_unknown(bogus, run_python):
    r = run_python(ROUTE, VAEFAST_BF16=bogus)
    assert r.returncode != 0
    assert "VAEFAST_BF16" in r.stderr and "route must be one of" in r.stderr


def test_default_route_prefers_amx_under_avx512(run_python):
    r = run_python(ROUTE, VAEFAST_BF16=None)
    assert r.returncode == 0, r.stderr
    want = ("amx" if AMX else "native" if _core.bf16_native_supported() else "emulated")
    if _core.best_isa() not in ("avx512", "neon"):  # neon: BFMLAL if the CPU has BF16
        want = "emulated"
    assert r.stdout.strip() == want
    generic = run_python(ROUTE, VAEFAST_BF16=None, VAEFAST_ISA="generic")
    assert generic.stdout.strip() == "emulated"
