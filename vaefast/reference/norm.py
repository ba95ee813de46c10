"""NumPy twin of batch and layer normalisation (csrc/norm.c), float64 maths.

Written to be read: the textbook formulas, one function per C entry point.
"""

from typing import Optional

import numpy as np
from numpy.typing import NDArray

__all__ = ["batch_norm_train", "batch_norm_infer", "batch_norm_backward",
           "layer_norm_forward", "layer_norm_backward"]

F64 = NDArray[np.float64]


def _act(v: F64, relu: bool) -> F64:
    return np.maximum(v, 0.0) if relu else v


def batch_norm_train(y: F64, gamma: F64, beta: F64, eps: float, relu: bool = False,
                     momentum: float = 0.01, running: Optional[tuple[F64, F64]] = None
                     ) -> tuple[F64, F64, F64, Optional[tuple[F64, F64]]]:
    """(out, xhat, inv_std, updated (running_mean, running_var) or None).
    [vf_batch_norm_train]"""
    M = y.shape[0]
    mean = y.mean(axis=0)
    var = ((y - mean) ** 2).mean(axis=0)  # biased: what normalises
    inv_std = 1.0 / np.sqrt(var + eps)
    xhat = (y - mean) * inv_std
    new = None
    if running is not None:  # the running variance takes the unbiased estimate
        new = ((1 - momentum) * running[0] + momentum * mean,
               (1 - momentum) * running[1] + momentum * var * M / (M - 1))
    return _act(gamma * xhat + beta, relu), xhat, inv_std, new


def batch_norm_infer(y: F64, gamma: F64, beta: F64, running_mean: F64, running_var: F64,
                     eps: float, relu: bool = False) -> F64:
    """act(gamma·(y − running_mean)/sqrt(running_var + eps) + beta).  [vf_batch_norm_infer]"""
    return _act(gamma * (y - running_mean) / np.sqrt(running_var + eps) + beta, relu)


def batch_norm_backward(dz: F64, xhat: F64, gamma: F64,
                        inv_std: F64) -> tuple[F64, F64, F64]:
    """(dy, dgamma, dbeta) from dz = dL/d(gamma·xhat + beta).  [vf_batch_norm_backward]"""
    M = dz.shape[0]
    dgamma = (dz * xhat).sum(axis=0)
    dbeta = dz.sum(axis=0)
    dy = gamma * inv_std * (dz - dbeta / M - xhat * dgamma / M)
    return dy, dgamma, dbeta


def layer_norm_forward(y: F64, eps: float, relu: bool = False) -> tuple[F64, F64, F64]:
    """(out, xhat, inv_std (M,)) of the per-row normalisation.  [vf_layer_norm_forward]"""
    mean = y.mean(axis=1, keepdims=True)
    var = ((y - mean) ** 2).mean(axis=1, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    xhat = (y - mean) * inv_std
    return _act(xhat, relu), xhat, inv_std[:, 0]


def layer_norm_backward(dz: F64, xhat: F64, inv_std: F64) -> F64:
    """dy from dz = dL/dxhat.  [vf_layer_norm_backward]"""
    m1 = dz.mean(axis=1, keepdims=True)
    m2 = (dz * xhat).mean(axis=1, keepdims=True)
    dy: F64 = inv_std[:, None] * (dz - m1 - xhat * m2)
    return dy
