"""NumPy twin of the model's training loss with the hidden-layer options:
Linear → [BatchNorm] → [LayerNorm] → ReLU → dropout, batch statistics
(vaefast/_hidden_options.py; kernels csrc/vae_dropout.c, csrc/vae_norm.c).

float64 maths; the oracle of the core's training loss and, by central
differences, of its gradients.
"""

from typing import Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from . import (Params, encoder_input, linear_forward, per_sample_loss, reparam_forward,
               split_head)
from .norm import batch_norm_train, layer_norm_forward

__all__ = ["HiddenLayer", "loss"]

F64 = NDArray[np.float64]

BN_EPS, BN_MOMENTUM, LN_EPS = 1e-3, 0.01, 1e-5


class HiddenLayer:
    """The options of one hidden layer: keep mask and rate, batch norm's
    (gamma, beta) or None, layer norm on or off."""

    def __init__(self, keep: Optional[F64] = None, p: float = 0.0,
                 batch_norm: Optional[tuple[F64, F64]] = None, layer_norm: bool = False):
        self.keep, self.p, self.batch_norm, self.layer_norm = keep, p, batch_norm, layer_norm

    def __call__(self, y: F64) -> F64:
        """The layer's output from its GEMM output y (bias included)."""
        if self.batch_norm is not None:
            y = batch_norm_train(y, *self.batch_norm, BN_EPS)[0]
        if self.layer_norm:
            y = layer_norm_forward(y, LN_EPS)[0]
        y = np.maximum(y, 0.0)
        return y if self.keep is None else y * self.keep / (1.0 - self.p)


def loss(params: Params, x: F64, eps: F64, encoder: Sequence[HiddenLayer],
         decoder: Sequence[HiddenLayer], likelihood: str = "bernoulli",
         beta: float = 1.0) -> float:
    """Batch-mean negative ELBO in training mode, noise eps (B, Z)."""
    h = encoder_input(likelihood, x)
    for (W, b), layer in zip(params["encoder"], encoder):
        h = layer(np.asarray(linear_forward(h, W, b), np.float64))
    mu, logvar = split_head(linear_forward(h, *params["head"]))
    g = reparam_forward(mu, logvar, eps)
    for (W, b), layer in zip(params["decoder"], decoder):
        g = layer(np.asarray(linear_forward(g, W, b), np.float64))
    cache = {"out": linear_forward(g, *params["output"]), "mu": mu, "logvar": logvar}
    total, _, _ = per_sample_loss(cache, x, likelihood, beta, params)
    return float(total.mean())
