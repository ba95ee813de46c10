"""Philox4x32-10 and normal variates (vaefast.random) against published
known answers, randomgen, the float64 NumPy twin and statistics."""

import numpy as np
import pytest

import vaefast
from vaefast.reference import rng as ref
from vaefast.random import normal, philox4x32

# Random123 tests/kat_vectors, "philox4x32 10" lines: counter[4] key[2] -> out[4].
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]

# float32 Box-Muller vs the float64 twin on identical uniforms: ln has a
# relative error <= 7.4e-9 plus ~8 float32 roundings (2**-24 each), sqrt/sin/
# cos a few more, and the angle 2π·t is rounded once: a handful of ulp of
# max(1, |z|). Observed max 2.2e-7 on 10**6 samples; 5e-7 leaves margin.
NORMAL_REL = 5e-7


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_philox_known_answers(ctr, key, expected):
    out = philox4x32(np.array(ctr, np.uint32), np.array(key, np.uint32))
    assert out.dtype == np.uint32
    assert tuple(int(v) for v in out) == expected
    assert tuple(int(v) for v in ref.philox4x32_10([ctr], [key])[0]) == expected


def test_philox_matches_twin_on_random_inputs(rng):
    # 1003: not a multiple of any lane count, so the tail path is covered too.
    ctr = rng.integers(0, 2**32, size=(1003, 4), dtype=np.uint32)
    key = rng.integers(0, 2**32, size=(1003, 2), dtype=np.uint32)
    np.testing.assert_array_equal(philox4x32(ctr, key), ref.philox4x32_10(ctr, key))


def test_philox_matches_randomgen(rng):
    randomgen = pytest.importorskip("randomgen")
    for _ in range(20):
        c = [int(v) for v in rng.integers(0, 2**32, size=4)]
        k = [int(v) for v in rng.integers(0, 2**32, size=2)]
        c[0] = min(c[0], 2**32 - 10)  # keep the increments inside word 0
        counter = c[0] | c[1] << 32 | c[2] << 64 | c[3] << 96
        bg = randomgen.Philox(number=4, width=32, counter=counter,
                              key=k[0] | k[1] << 32)
        raw = bg.random_raw(4 * 5).astype(np.uint32).reshape(5, 4)
        # randomgen increments the counter before each block.
        ctrs = np.array([[c[0] + 1 + i, c[1], c[2], c[3]] for i in range(5)], np.uint32)
        np.testing.assert_array_equal(philox4x32(ctrs, np.array(k, np.uint32)), raw)


def test_philox_broadcasting():
    ctr = np.arange(24, dtype=np.uint32).reshape(2, 3, 4)
    key = np.array([[1, 2]], dtype=np.uint32)  # (1, 2) broadcasts over (2, 3)
    out = philox4x32(ctr, key)
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(
        out.reshape(-1, 4), ref.philox4x32_10(ctr.reshape(-1, 4), np.tile([1, 2], (6, 1))))
    assert philox4x32(np.zeros((0, 4), np.uint32), np.zeros((0, 2), np.uint32)).shape == (0, 4)


def test_philox_errors():
    with pytest.raises(ValueError, match="counter"):
        philox4x32(np.zeros(3, np.uint32), np.zeros(2, np.uint32))
    with pytest.raises(ValueError, match="key"):
        philox4x32(np.zeros(4, np.uint32), np.zeros(3, np.uint32))
    with pytest.raises(ValueError, match="key"):
        philox4x32(np.zeros(4, np.int64), np.array([-1, 0]))
    with pytest.raises(TypeError, match="counter"):
        philox4x32(np.zeros(4, np.float32), np.zeros(2, np.uint32))
    with pytest.raises(ValueError, match="broadcast"):
        philox4x32(np.zeros((3, 4), np.uint32), np.zeros((2, 2), np.uint32))


@pytest.mark.parametrize("seed,offset", [(0, 0), (12345, 3), (2**64 - 1, 2**62 + 1)])
def test_normal_matches_float64_twin(seed, offset):
    n = 200_003
    z = normal(seed, (n,), offset=offset).astype(np.float64)
    t = ref.normal(seed, n, offset)
    err = np.abs(z - t) / np.maximum(1.0, np.abs(t))
    assert err.max() <= NORMAL_REL, err.max()


def test_normal_statistics():
    n = 10**6
    z = normal(2024, (n,)).astype(np.float64)
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    stats = pytest.importorskip("scipy.stats")
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # Largest |value| Box-Muller can give from a (0, 1] uniform >= 2**-33.
    assert np.abs(z).max() <= np.sqrt(66 * np.log(2)) + 1e-5


def test_neighbouring_seeds_and_offsets_uncorrelated():
    n = 200_000
    bound = 5 / np.sqrt(n)
    a = normal(7, (n,))
    for other in (normal(8, (n,)), normal(7, (n,), offset=n), normal(2**32 + 7, (n,))):
        assert abs(np.corrcoef(a, other)[0, 1]) < bound
    # Lanes of one block (the two Box-Muller pairs, cos vs sin) are uncorrelated.
    q = a.reshape(-1, 4)
    c = np.corrcoef(q.T)
    assert np.abs(c - np.eye(4)).max() < 5 / np.sqrt(q.shape[0])
    assert abs(np.corrcoef(q[:, 0] ** 2, q[:, 1] ** 2)[0, 1]) < 5 / np.sqrt(q.shape[0])


def test_normal_chunking_invariance():
    whole = normal(99, (10,))
    np.testing.assert_array_equal(
        whole, np.concatenate([normal(99, (4,)), normal(99, (6,), offset=4)]))
    big = normal(5, (100_001,), offset=3)
    pieces, start = [], 0
    for size in (1, 2, 5, 63, 64, 1000, 33_333, 65_532):
        pieces.append(normal(5, (size,), offset=3 + start))
        start += size
    pieces.append(normal(5, (100_001 - start,), offset=3 + start))
    np.testing.assert_array_equal(big, np.concatenate(pieces))
    assert normal(5, (2, 3)).shape == (2, 3)
    np.testing.assert_array_equal(normal(5, (2, 3)).ravel(), normal(5, 6))


def test_normal_thread_invariance():
    before = vaefast.get_num_threads()
    try:
        vaefast.set_num_threads(1)
        one = normal(11, (300_001,), offset=1)
        vaefast.set_num_threads(2)
        two = normal(11, (300_001,), offset=1)
    finally:
        vaefast.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_kernel_sets_agree(on_each_kernel_set):
    outs = on_each_kernel_set(lambda: normal(3, (50_001,), offset=7).astype(np.float64))
    base = outs["generic"]
    for isa, z in outs.items():
        # Each set is within NORMAL_REL of the twin, so two sets within twice that.
        assert (np.abs(z - base) / np.maximum(1, np.abs(base))).max() <= 2 * NORMAL_REL, isa


def test_normal_errors():
    with pytest.raises(ValueError, match="seed"):
        normal(-1, 3)
    with pytest.raises(ValueError, match="seed"):
        normal(2**64, 3)
    with pytest.raises(TypeError, match="seed"):
        normal(1.5, 3)
    with pytest.raises(TypeError, match="seed"):
        normal(True, 3)
    with pytest.raises(ValueError, match="offset"):
        normal(1, 3, offset=-2)
    with pytest.raises(ValueError, match="offset"):
        normal(1, 3, offset=2**64 - 2)
    with pytest.raises(ValueError, match="shape"):
        normal(1, (2, -1))
    with pytest.raises(TypeError, match="shape"):
        normal(1, "abc")
    assert normal(1, (0,)).shape == (0,)
    assert normal(1, 2, offset=2**64 - 2).shape == (2,)
