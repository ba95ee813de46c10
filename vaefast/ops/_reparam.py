"""Fused reparameterization (z = mu + exp(logvar/2)·eps, eps from Philox).

eps[i, j] is a pure function of (seed, step, row_offset + i, j): the forward
pass never stores it and the backward pass regenerates it (counter layout in
``vaefast.random``). Rows must satisfy ``row_offset + rows <= 2**32``.
"""

from typing import Literal, Optional, Sequence, Union, overload

import numpy as np

from .. import _core
from .._typing import ArrayLike, F32
from .._validation import as_float, as_float32_array, as_int, as_seed, check_out, require_finite

__all__ = ["reparameterize", "reparameterize_backward", "reparameterization_noise"]


def _rows(row_offset: object, rows: int, name: str = "row_offset") -> int:
    row_offset = as_int(row_offset, name, minimum=0)
    if row_offset + rows > 2**32:
        raise ValueError(f"{name} + rows must be <= 2**32, got {row_offset} + {rows}")
    return row_offset


def _checked(value: object, name: str) -> F32:
    """2-D float32 C-contiguous array without NaN/Inf, or an error naming it."""
    arr = as_float32_array(value, name, ndim=2, allow_empty=True, finite=False)
    return require_finite(arr, name)


def _pair(mu: object, logvar: object) -> tuple[F32, F32]:
    mu = _checked(mu, "mu")
    logvar = _checked(logvar, "logvar")
    if logvar.shape != mu.shape:
        raise ValueError(f"logvar must have the shape of mu {mu.shape}, got {logvar.shape}")
    return mu, logvar


def _same(value: object, name: str, shape: tuple[int, ...]) -> Optional[F32]:
    if value is None:
        return None
    arr = _checked(value, name)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return arr


def reparameterization_noise(seed: int, step: int, shape: Sequence[int],
                             row_offset: int = 0) -> F32:
    """The eps that :func:`reparameterize` uses, materialised.

    Parameters
    ----------
    seed, step : int in [0, 2**64)
    shape : (rows, cols)
    row_offset : int >= 0
        Global index of the first row.

    Returns
    -------
    eps : numpy.ndarray of float32, shape ``shape``
    """
    seed, step = as_seed(seed, "seed"), as_seed(step, "step")
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"shape must be a (rows, cols) pair, got {shape!r}")
    M, N = (as_int(s, "shape", minimum=0) for s in shape)
    row_offset = _rows(row_offset, M)
    eps = np.empty((M, N), dtype=np.float32)
    _core.reparam_eps(seed, step, row_offset, eps)
    return eps


@overload
def reparameterize(mu: ArrayLike, logvar: ArrayLike, seed: int, step: int,
                   eps: Optional[ArrayLike] = None, row_offset: int = 0,
                   out: Optional[F32] = None, return_kl: Literal[False] = False) -> F32: ...
@overload
def reparameterize(mu: ArrayLike, logvar: ArrayLike, seed: int, step: int,
                   eps: Optional[ArrayLike] = None, row_offset: int = 0,
                   out: Optional[F32] = None, *,
                   return_kl: Literal[True]) -> tuple[F32, F32]: ...
def reparameterize(mu: ArrayLike, logvar: ArrayLike, seed: int, step: int,
                   eps: Optional[ArrayLike] = None, row_offset: int = 0,
                   out: Optional[F32] = None,
                   return_kl: bool = False) -> Union[F32, tuple[F32, F32]]:
    """z = mu + exp(logvar / 2) · eps in one pass.

    Parameters
    ----------
    mu, logvar : array_like, shape (M, N)
    seed, step : int in [0, 2**64)
        eps is generated from (seed, step, row_offset + i, j) inside the kernel.
    eps : array_like (M, N), optional
        Explicit noise replacing the generator.
    row_offset : int >= 0
        Global index of row 0 (for batches cut from a larger set).
    out : numpy.ndarray (M, N) float32, optional
        Output buffer.
    return_kl : bool
        Also return the per-row KL(N(mu, exp(logvar)) ‖ N(0, I)) (M,),
        computed in the same pass.

    Returns
    -------
    z : numpy.ndarray float32 (M, N), or ``(z, kl)`` with ``return_kl``.
    """
    mu, logvar = _pair(mu, logvar)
    seed, step = as_seed(seed, "seed"), as_seed(step, "step")
    eps = _same(eps, "eps", mu.shape)
    row_offset = _rows(row_offset, mu.shape[0])
    z = np.empty(mu.shape, np.float32) if out is None else check_out(out, "out", mu.shape)
    kl = np.zeros(mu.shape[0], np.float32) if return_kl else None
    _core.reparam_forward(mu, logvar, seed, step, row_offset, eps, z, kl)
    return (z, kl) if kl is not None else z


def reparameterize_backward(mu: ArrayLike, logvar: ArrayLike, dz: Optional[ArrayLike],
                            seed: int, step: int, eps: Optional[ArrayLike] = None,
                            kl_scale: float = 0.0, row_offset: int = 0,
                            out: Optional[Sequence[F32]] = None) -> tuple[F32, F32]:
    """Gradients of reparameterize (+ kl_scale · KL) w.r.t. mu and logvar.

    ``dmu = dz + kl_scale·mu`` and
    ``dlogvar = dz·exp(logvar/2)·eps/2 + kl_scale·(exp(logvar) − 1)/2``,
    with eps regenerated from (seed, step, row) unless given.

    Parameters
    ----------
    mu, logvar : array_like (M, N)
    dz : array_like (M, N) or None
        Upstream gradient of z; None for the KL term only.
    seed, step : int in [0, 2**64)
    eps : array_like (M, N), optional
    kl_scale : float
        Weight of the KL term (beta / batch size, say).
    row_offset : int >= 0
    out : pair of numpy.ndarray (M, N) float32, optional
        Buffers for ``(dmu, dlogvar)`` (saves two allocations per step).

    Returns
    -------
    dmu, dlogvar : numpy.ndarray float32 (M, N)
    """
    mu, logvar = _pair(mu, logvar)
    seed, step = as_seed(seed, "seed"), as_seed(step, "step")
    dz = _same(dz, "dz", mu.shape)
    eps = _same(eps, "eps", mu.shape)
    kl_scale = as_float(kl_scale, "kl_scale")
    row_offset = _rows(row_offset, mu.shape[0])
    if out is None:
        dmu = np.empty(mu.shape, np.float32)
        dlogvar = np.empty(mu.shape, np.float32)
    else:
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError("out must be a (dmu, dlogvar) pair of arrays")
        dmu = check_out(out[0], "out[0]", mu.shape)
        dlogvar = check_out(out[1], "out[1]", mu.shape)
        if np.shares_memory(dmu, dlogvar):
            raise ValueError("out[0] and out[1] must not overlap")
    _core.reparam_backward(mu, logvar, seed, step, row_offset, eps, dz,
                           kl_scale, dmu, dlogvar)
    return dmu, dlogvar
