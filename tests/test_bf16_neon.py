"""The AArch64 bf16 route (BFMLALT + BFMLALB, csrc/isa/gemm_bf16_neon.h)
against the emulation of VDPBF16PS, bit for bit, at the corners where the
Arm instructions alone would differ.

Oracle: the generic emulation (csrc/isa/vec_bf16.h), itself held to the
instruction's rules by tests/test_bf16.py (EDGE); the expected bits of the
corners below follow from those rules. Under FPCR.FZ, Arm flushes a result
that is tiny before rounding, x86 (and so the emulation) after rounding;
Arm's default NaN is 0x7FC00000 and its NaN priority differs. The route
must redo those lanes and tiles by the emulation; nothing else may change.
Random lanes and whole products: test_bf16.py's needs_native tests, which
run here too. Runs only on AArch64 with the BF16 hwcap (under QEMU: -cpu max).
"""

import platform

import numpy as np
import pytest

import vaefast
from vaefast import _core

AARCH64 = platform.machine().lower() in ("aarch64", "arm64")
pytestmark = pytest.mark.skipif(
    not (AARCH64 and _core.bf16_native_supported()),
    reason="not an AArch64 CPU with BF16 (BFMLALT/BFMLALB): the route is not built or not usable")

MIN_NORMAL, DEFAULT_NAN = 0x00800000, 0xFFC00000


def bf(x):
    """bf16 bits of a power of two (exact in bf16)"""
    return int(np.float32(x).view(np.uint32)) >> 16


def pair(lo, hi):
    return (hi << 16) | lo


def f32(u):
    return np.uint32(u).view(np.float32)


# (acc bits, a pair, b pair, expected bits, why), each corner beside lanes
# BFMLAL gets right, so a group of 4 lanes mixes both
CORNERS = [
    (MIN_NORMAL, pair(0, bf(2.0**-76)), pair(0, bf(-(2.0**-76))), MIN_NORMAL,
     "2^-126 - 2^-152: tiny only before rounding (Arm flushes to +0)"),
    (MIN_NORMAL, pair(0, bf(2.0**-75)), pair(0, bf(-(2.0**-76))), MIN_NORMAL,
     "2^-126 - 2^-151, a tie to even: up to 2^-126"),
    (MIN_NORMAL | 0x80000000, pair(0, bf(2.0**-76)), pair(0, bf(2.0**-76)),
     MIN_NORMAL | 0x80000000, "the same below zero"),
    (MIN_NORMAL, pair(bf(2.0**-76), 0), pair(bf(-(2.0**-76)), 0), MIN_NORMAL,
     "the same on the even (BFMLALB) step"),
    (MIN_NORMAL, pair(0, bf(2.0**-75)), pair(0, bf(-(2.0**-75))), 0x00000000,
     "2^-126 - 2^-150 is tiny after rounding too: +0 on both"),
    (0x3F800000, pair(0, 0x7F80), pair(0, 0), DEFAULT_NAN, "inf*0: x86's default NaN"),
    (0xFF800000, pair(0, 0x7F80), pair(0, 0x3F80), DEFAULT_NAN, "-inf + inf"),
    (0x7FC11111, pair(0, 0x7FC2), pair(0, 0x3F80), 0x7FC20000,
     "a product's NaN before the accumulator's (Arm: the addend's first)"),
    (0x7FC11111, pair(0, 0x3F80), pair(0, 0x7F83), 0x7FC30000,
     "b's signalling NaN quieted, over the accumulator's quiet one"),
    (0x3F800000, pair(0x3F80, 0x3F80), pair(0x3F80, 0x3F80), 0x40400000, "1 + 1 + 1"),
    (0x00000000, pair(0x3F80, 0x4000), pair(0x4040, 0x4080), 0x41300000, "2*4 + 1*3"),
]


@pytest.mark.parametrize("shift", range(4))
def test_corner_lanes_match_the_emulation(shift):
    """Each corner at each position of a 4-lane group, among plain lanes."""
    plain = (0x3F800000, pair(0x3F80, 0x4000), pair(0x4000, 0x3F80), 0x40A00000, "1+2+2")
    rows = []
    for c in CORNERS:
        rows += [plain] * shift + [c] + [plain] * (3 - shift)
    acc = np.array([r[0] for r in rows], np.uint32).view(np.float32)
    a = np.array([r[1] for r in rows], np.uint32)
    b = np.array([r[2] for r in rows], np.uint32)
    out_n, out_e = np.empty_like(acc), np.empty_like(acc)
    _core.bf16_dot2_lanes(acc, a, b, out_n, "native")
    _core.bf16_dot2_lanes(acc, a, b, out_e, "emulated")
    for r, n, e in zip(rows, out_n.view(np.uint32), out_e.view(np.uint32)):
        assert e == r[3], f"emulation, {r[4]}: {e:#010x}"
        assert n == r[3], f"BFMLAL route, {r[4]}: got {n:#010x}, want {r[3]:#010x}"


@pytest.mark.parametrize("n", [1, 3, 5, 11])
def test_lane_tails(rng, n):
    """Lengths that are not a multiple of 4: the tail is padded, not read past."""
    acc = rng.standard_normal(n).astype(np.float32)
    a = rng.integers(0x3C00, 0x4200, (n, 2)).astype(np.uint32)
    b = rng.integers(0xBC00, 0xC200, (n, 2)).astype(np.uint32)
    a, b = a[:, 0] | (a[:, 1] << 16), b[:, 0] | (b[:, 1] << 16)
    out_n, out_e = np.full(n + 1, 7.0, np.float32), np.empty(n, np.float32)
    _core.bf16_dot2_lanes(acc, a, b, out_n[:n], "native")
    _core.bf16_dot2_lanes(acc, a, b, out_e, "emulated")
    np.testing.assert_array_equal(out_n[:n].view(np.uint32), out_e.view(np.uint32))
    assert out_n[n] == 7.0


def corner_product(rng, M, N, K):
    """A (M×K), B (K×N) of ordinary values, with entry (1, 2) made the
    tininess corner (2^-126 − 2^-152, summed over k = 0..2) and entry
    (M−1, N−1) an inf·0 (one tile each when the shape allows)."""
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    a[1, :], b[:, 2] = 0.0, 0.0
    a[1, 0], b[0, 2] = 2.0**-63, 2.0**-63      # hi of pair 0 is k = 1: 0 first
    a[1, 2], b[2, 2] = 2.0**-76, -(2.0**-76)  # pair 1 (k = 2, 3): hi k = 3 is 0
    a[M - 1, K - 1], b[K - 1, N - 1] = np.inf, 0.0
    return a, b


@pytest.mark.parametrize("M,N,K", [(9, 13, 5), (37, 45, 31), (8, 12, 4), (100, 40, 400)])
def test_gemm_tiles_with_corners_match_the_emulation(rng, M, N, K):
    a, b = corner_product(rng, M, N, K)
    outs = {}
    for impl in ("emulated", "native"):
        c = np.full((M, N), np.nan, np.float32)
        flag = _core.gemm_bf16(a, b, False, False, None, False, c, impl)
        outs[impl] = (c, flag)
    (ce, fe), (cn, fn) = outs["emulated"], outs["native"]
    assert fe and fn  # the NaN is flagged on both
    np.testing.assert_array_equal(cn.view(np.uint32), ce.view(np.uint32))
    assert ce.view(np.uint32)[1, 2] == MIN_NORMAL  # 2^-126 - 2^-152 rounds up
    assert ce.view(np.uint32)[M - 1, N - 1] == DEFAULT_NAN


def test_thread_count_does_not_change_bits(rng):
    a, b = corner_product(rng, 300, 200, 120)
    before = vaefast.get_num_threads()
    outs = []
    try:
        for t in (1, 2):
            vaefast.set_num_threads(t)
            c = np.empty((300, 200), np.float32)
            _core.gemm_bf16(a, b, False, False, None, False, c, "native")
            outs.append(c)
    finally:
        vaefast.set_num_threads(before)
    np.testing.assert_array_equal(outs[0].view(np.uint32), outs[1].view(np.uint32))


def test_flush_to_zero_does_not_leak(rng):
    """FPCR is restored: after a product that underflowed, float32
    subnormals still exist in this thread (FZ would flush them to 0), and
    the epilogue's bias add is not flushed either."""
    before = vaefast.get_num_threads()
    vaefast.set_num_threads(1)  # the product runs on this thread
    try:
        a, b = corner_product(rng, 9, 13, 5)
        bias = np.full(13, 2.0**-140, np.float32)  # a subnormal float32
        c = np.empty((9, 13), np.float32)
        a[0, :], b[:, 0] = 0.0, 0.0
        _core.gemm_bf16(a, b, False, False, bias, False, c, "native")
    finally:
        vaefast.set_num_threads(before)
    assert c[0, 0] == np.float32(2.0**-140)  # 0 + bias, not flushed
    tiny = np.array([2.0**-140], np.float32)
    assert (tiny * np.float32(0.5))[0] == np.float32(2.0**-141)
