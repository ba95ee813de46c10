"""NumPy twin of the hidden layers' dropout (csrc/vae_dropout.c).

The keep mask is drawn from the same Philox4x32-10 blocks as the kernel
(counter layout in csrc/vae_dropout.c), so twin and core agree bit for bit;
``loss`` is the model's batch-mean negative ELBO with given masks, the
float64 oracle of the core's training loss (and, by central differences, of
its gradients).
"""

from typing import Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from . import (Params, encoder_input, linear_forward, per_sample_loss,
               reparam_forward, split_head)
from .rng import _seed_key, philox4x32_10

__all__ = ["DROPOUT_TAG", "dropout_mask", "layer_masks", "loss"]

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


def _mlp(layers: Sequence[tuple[F64, F64]], x: F64, masks: Sequence[F64], p: float) -> F64:
    for (W, b), keep in zip(layers, masks):
        x = linear_forward(x, W, b, "relu") * keep / (1.0 - p)
    return x


def loss(params: Params, x: F64, eps: F64, masks: tuple[Sequence[F64], Sequence[F64]],
         p_enc: float, p_dec: float, likelihood: str = "bernoulli", beta: float = 1.0,
         size_factors: Optional[F64] = None) -> float:
    """Batch-mean negative ELBO with inverted dropout: each hidden layer's
    ReLU output times keep / (1 − p)."""
    h = _mlp(params["encoder"], encoder_input(likelihood, x), masks[0], p_enc)
    head_out = linear_forward(h, *params["head"])
    mu, logvar = split_head(head_out)
    z = reparam_forward(mu, logvar, eps)
    g = _mlp(params["decoder"], z, masks[1], p_dec)
    out = linear_forward(g, *params["output"])
    cache = {"out": out, "mu": mu, "logvar": logvar}
    total, _, _ = per_sample_loss(cache, x, likelihood, beta, params, size_factors)
    return float(total.mean())
