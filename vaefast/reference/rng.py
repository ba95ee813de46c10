"""NumPy twins of the random kernels, written to be read (float64 maths).

Mirrors csrc/isa/rng_math.h: the same Philox4x32-10 blocks, the same
integer -> uniform mapping (done in float32 exactly like the kernels, so both
sides see identical uniforms), then float64 log / sqrt / cos / sin where the
kernels use float32 polynomials. Counter layouts: see vaefast.random.
"""

from typing import Any, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

U32 = NDArray[np.uint32]
F64 = NDArray[np.float64]

__all__ = ["philox4x32_10", "normal", "reparam_eps"]

PHILOX_M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
PHILOX_W = (0x9E3779B9, 0xBB67AE85)
REPARAM_TAG = 0x80000000


def philox4x32_10(counter: ArrayLike, key: ArrayLike) -> U32:
    """Philox4x32-10: counter (n, 4) uint32, key (n, 2) uint32 -> (n, 4) uint32."""
    c: list[Any] = [np.asarray(counter, np.uint32)[..., w].astype(np.uint64) for w in range(4)]
    k = np.asarray(key, np.uint32)
    k0 = k[..., 0].astype(np.uint64)
    k1 = k[..., 1].astype(np.uint64)
    mask = np.uint64(0xFFFFFFFF)
    for rnd in range(10):
        if rnd:  # key schedule: add the Weyl constants, mod 2**32
            k0 = (k0 + np.uint64(PHILOX_W[0])) & mask
            k1 = (k1 + np.uint64(PHILOX_W[1])) & mask
        p0 = PHILOX_M[0] * c[0]  # < 2**64: exact in uint64
        p1 = PHILOX_M[1] * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & mask,
             (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & mask]
    return np.stack(c, axis=-1).astype(np.uint32)


def _box_muller(x: U32) -> F64:
    """Philox blocks x (n, 4) uint32 -> normals (n, 4) float64."""
    out = np.empty(x.shape, np.float64)
    for r, a in ((0, 1), (2, 3)):
        # The kernels' uniform, bit for bit: float32(x)·2^-32 + 2^-33 in float32.
        u = x[:, r].astype(np.float32) * np.float32(2.0**-32) + np.float32(2.0**-33)
        radius = np.sqrt(-2.0 * np.log(u.astype(np.float64)))
        theta = 2.0 * np.pi * (x[:, a] >> np.uint32(8)).astype(np.float64) * 2.0**-24
        out[:, r] = radius * np.cos(theta)
        out[:, a] = radius * np.sin(theta)
    return out


def _seed_key(seed: int, n: int) -> U32:
    return np.tile(np.array([seed & 0xFFFFFFFF, seed >> 32], np.uint32), (n, 1))


def normal(seed: int, shape: Union[int, Sequence[int]], offset: int = 0) -> F64:
    """Twin of vaefast.random.normal, float64."""
    dims: tuple[int, ...] = ((shape,) if np.isscalar(shape)  # type: ignore[assignment]
                             else tuple(shape))  # type: ignore[arg-type]  # a sequence
    n = int(np.prod(dims, dtype=np.int64))
    first, last = offset // 4, (offset + n + 3) // 4
    b = np.arange(first, last, dtype=np.uint64)
    ctr = np.zeros((b.size, 4), np.uint32)
    ctr[:, 0] = (b & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    ctr[:, 1] = (b >> np.uint64(32)).astype(np.uint32)
    z = _box_muller(philox4x32_10(ctr, _seed_key(seed, b.size))).reshape(-1)
    start = offset - 4 * first
    return z[start:start + n].reshape(dims)


def reparam_eps(seed: int, step: int, row0: int, M: int, N: int) -> F64:
    """Twin of vf_reparam_eps: eps (M, N) float64 for rows row0 .. row0+M-1."""
    nb = (N + 3) // 4
    rows, cbs = np.meshgrid(np.arange(row0, row0 + M, dtype=np.uint64),
                            np.arange(nb, dtype=np.uint64), indexing="ij")
    ctr = np.zeros((M * nb, 4), np.uint32)
    ctr[:, 0] = rows.reshape(-1).astype(np.uint32)
    ctr[:, 1] = (cbs.reshape(-1) | np.uint64(REPARAM_TAG)).astype(np.uint32)
    ctr[:, 2] = step & 0xFFFFFFFF
    ctr[:, 3] = step >> 32
    z = _box_muller(philox4x32_10(ctr, _seed_key(seed, M * nb)))
    return z.reshape(M, 4 * nb)[:, :N]
