"""NumPy twin of the hidden layers' dropout (csrc/vae_dropout.c).

The keep mask is drawn from the same Philox4x32-10 blocks as the kernel
(counter layout in csrc/vae_dropout.c), so twin and core agree bit for bit.
The model's training loss with dropout and normalisation: hidden.py.
"""

from typing import Sequence

import numpy as np
from numpy.typing import NDArray

from .rng import _seed_key, philox4x32_10

__all__ = ["DROPOUT_TAG", "dropout_mask", "layer_masks"]

DROPOUT_TAG = 0x40000000

F64 = NDArray[np.float64]


def dropout_mask(seed: int, step: int, layer: int, row0: int, M: int, N: int,
                 p: float) -> F64:
    """Keep mask (M, N) (1.0 kept, 0.0 dropped) of rate p for rows row0 ..
    row0+M-1 of model layer `layer` at (seed, step).  [vf_dropout_mask]"""
    nb = (N + 3) // 4
    rows, blocks = np.meshgrid(np.arange(row0, row0 + M, dtype=np.uint64),
                               np.arange(nb, dtype=np.uint64), indexing="ij")
    ctr = np.zeros((M * nb, 4), np.uint32)
    ctr[:, 0] = rows.reshape(-1).astype(np.uint32)
    ctr[:, 1] = (blocks.reshape(-1) | np.uint64(DROPOUT_TAG | layer << 22)).astype(np.uint32)
    ctr[:, 2] = step & 0xFFFFFFFF
    ctr[:, 3] = step >> 32
    words = philox4x32_10(ctr, _seed_key(seed, M * nb)).reshape(M, 4 * nb)[:, :N]
    threshold = int(float(np.float32(p)) * 2.0**32)  # the kernel's floor(p · 2^32)
    return (words >= threshold).astype(np.float64)


def layer_masks(seed: int, step: int, row0: int, M: int, enc_widths: Sequence[int],
                dec_widths: Sequence[int], p_enc: float,
                p_dec: float) -> tuple[list[F64], list[F64]]:
    """The keep masks of every encoder and decoder hidden layer (model layer
    numbers: encoder i is i, decoder i is n_enc + 1 + i)."""
    E = len(enc_widths)
    enc = [dropout_mask(seed, step, i, row0, M, w, p_enc) for i, w in enumerate(enc_widths)]
    dec = [dropout_mask(seed, step, E + 1 + i, row0, M, w, p_dec)
           for i, w in enumerate(dec_widths)]
    return enc, dec
