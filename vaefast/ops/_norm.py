"""Batch and layer normalisation of a hidden layer (csrc/norm.c).

The maths of torch.nn.BatchNorm1d and of torch.nn.LayerNorm without affine,
as scvi-tools' FCLayers uses them (batch norm momentum 0.01, eps 0.001:
scvi/nn/_base_components.py, scvi-tools 1.4): batch statistics with the
biased variance to normalise, the running variance updated with the unbiased
one. Column sums run in a fixed order whatever the thread count, so results
are bit-identical for any number of threads.
"""

from typing import NamedTuple, Optional

import numpy as np

from .. import _core
from .._typing import ArrayLike, F32
from .._validation import as_float, as_float32_array, require_finite

__all__ = ["batch_norm", "batch_norm_backward",
           "batch_norm_inference", "layer_norm", "layer_norm_backward"]


class _BatchNormCache(NamedTuple):
    """What batch_norm keeps for its backward pass."""
    xhat: F32     # (M, N) the normalised input
    inv_std: F32  # (N,) 1 / sqrt(batch variance + eps)
    gamma: F32    # (N,)


class _LayerNormCache(NamedTuple):
    """What layer_norm keeps for its backward pass."""
    xhat: F32     # (M, N)
    inv_std: F32  # (M,)


def _matrix(value: object, name: str, min_rows: int = 1) -> F32:
    arr = require_finite(as_float32_array(value, name, ndim=2), name)
    if arr.shape[0] < min_rows or arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least {min_rows} rows and 1 column, "
                         f"got shape {arr.shape}")
    return arr


def _vector(value: object, name: str, n: int) -> F32:
    arr = require_finite(as_float32_array(value, name, ndim=1), name)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    return arr


def _cache(cache: object, kind: type, made_by: str) -> None:
    if not isinstance(cache, kind):
        raise TypeError(f"cache must be the cache {made_by} returned, got "
                        f"{type(cache).__name__}")


def _act(relu: object) -> int:
    if not isinstance(relu, (bool, np.bool_)):
        raise TypeError(f"relu must be a bool, got {type(relu).__name__}")
    return int(relu)


def _eps(eps: object) -> float:
    return as_float(eps, "eps", minimum=0.0, open_min=True)


def batch_norm(y: ArrayLike, gamma: ArrayLike, beta: ArrayLike, eps: float = 1e-3,
               momentum: float = 0.01, relu: bool = False,
               running_mean: Optional[F32] = None,
               running_var: Optional[F32] = None) -> tuple[F32, _BatchNormCache]:
    """Batch normalisation in training: act(gamma·(y − mean)/sqrt(var + eps) + beta).

    Parameters
    ----------
    y : array_like, shape (M, N), M >= 2
    gamma, beta : array_like, shape (N,)
    eps : float > 0
    momentum : float in [0, 1]
    relu : bool
    running_mean, running_var : float32 ndarray, shape (N,), optional
        Updated in place: (1 − momentum)·old + momentum·(batch mean, and the
        batch variance with Bessel's correction M/(M − 1)).

    Returns
    -------
    out : ndarray (M, N) float32, and the cache for :func:`batch_norm_backward`
    """
    y = _matrix(y, "y", min_rows=2)
    N = y.shape[1]
    gamma, beta = _vector(gamma, "gamma", N), _vector(beta, "beta", N)
    mom = as_float(momentum, "momentum", minimum=0.0, maximum=1.0)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together")
    for name, arr in (("running_mean", running_mean), ("running_var", running_var)):
        if arr is not None and (not isinstance(arr, np.ndarray) or arr.dtype != np.float32
                                or arr.shape != (N,) or not arr.flags.c_contiguous
                                or not arr.flags.writeable):
            raise ValueError(f"{name} must be a writeable C-contiguous float32 ndarray of "
                             f"shape ({N},)")
    out, xhat = np.empty_like(y), np.empty_like(y)
    inv_std = np.empty(N, np.float32)
    _core.batch_norm_train_into(y, gamma, beta, _eps(eps), mom, _act(relu), out, xhat,
                                inv_std, running_mean, running_var)
    return out, _BatchNormCache(xhat, inv_std, gamma)


def batch_norm_inference(y: ArrayLike, gamma: ArrayLike, beta: ArrayLike,
                         running_mean: ArrayLike, running_var: ArrayLike,
                         eps: float = 1e-3, relu: bool = False) -> F32:
    """Batch normalisation with the running statistics (inference), shape of y."""
    y = _matrix(y, "y")
    N = y.shape[1]
    rv = _vector(running_var, "running_var", N)
    if (rv < 0).any():
        raise ValueError("running_var must be >= 0")
    out = np.empty_like(y)
    _core.batch_norm_infer_into(y, _vector(gamma, "gamma", N), _vector(beta, "beta", N),
                                _vector(running_mean, "running_mean", N), rv, _eps(eps),
                                _act(relu), out)
    return out


def batch_norm_backward(dz: ArrayLike, cache: _BatchNormCache) -> tuple[F32, F32, F32]:
    """Gradients (dy (M, N), dgamma (N,), dbeta (N,)) from dz = dL/d(affine
    output), already masked by a ReLU if there was one."""
    _cache(cache, _BatchNormCache, "batch_norm")
    xhat, inv_std, gamma = cache
    dz = _matrix(dz, "dz")
    if dz.shape != xhat.shape:
        raise ValueError(f"dz must have shape {xhat.shape}, got {dz.shape}")
    N = dz.shape[1]
    dy = np.empty_like(dz)
    dgamma, dbeta = np.empty(N, np.float32), np.empty(N, np.float32)
    _core.batch_norm_backward_into(dz, xhat, gamma, inv_std, dy, dgamma, dbeta)
    return dy, dgamma, dbeta


def layer_norm(y: ArrayLike, eps: float = 1e-5,
               relu: bool = False) -> tuple[F32, _LayerNormCache]:
    """Layer normalisation without affine, per row: act((y − mean)/sqrt(var + eps))."""
    y = _matrix(y, "y")
    out, xhat = np.empty_like(y), np.empty_like(y)
    inv_std = np.empty(y.shape[0], np.float32)
    _core.layer_norm_forward_into(y, _eps(eps), _act(relu), out, xhat, inv_std)
    return out, _LayerNormCache(xhat, inv_std)


def layer_norm_backward(dz: ArrayLike, cache: _LayerNormCache) -> F32:
    """dy (M, N) from dz = dL/d(normalised y), masked by a ReLU if there was one."""
    _cache(cache, _LayerNormCache, "layer_norm")
    xhat, inv_std = cache
    dz = _matrix(dz, "dz")
    if dz.shape != xhat.shape:
        raise ValueError(f"dz must have shape {xhat.shape}, got {dz.shape}")
    dy = np.empty_like(dz)
    _core.layer_norm_backward_into(dz, xhat, inv_std, dy)
    return dy
