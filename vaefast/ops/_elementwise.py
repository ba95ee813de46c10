"""Fused element-wise kernels: losses (Bernoulli, Gaussian, KL) and optimizers.

Loss inputs are converted to C-contiguous float32 (a copy only when needed).
NaN and infinity are rejected with a ValueError naming the argument: a
non-finite input always gives a non-finite loss for its row, so the losses
check their per-row output (small) rather than scan their inputs first, and
search the inputs only to name the culprit. Optimizer state is updated in
place, so those arrays must already be float32, C-contiguous and writeable;
all four arrays are checked before anything is written, so a rejected
update leaves them untouched.
"""

from typing import Callable, Optional, TypeGuard

import numpy as np

from .. import _core
from .._typing import ArrayLike, F32

# out= of a loss: (loss (M,), gradient (M, N) or None), both float32
LossOut = tuple[F32, Optional[F32]]
from .._validation import (as_float, as_float32_array, as_int, check_out, nonfinite_result,
                          require_finite)

__all__ = ["bernoulli_loss", "gaussian_loss", "kl_normal", "adam_update", "sgd_update"]


def _ready(a: object) -> TypeGuard[F32]:
    """Already a non-empty 2-D C-contiguous float32 ndarray (the common case,
    checked cheaply: these kernels take microseconds at model shapes)."""
    return (type(a) is np.ndarray and a.dtype == np.float32 and a.ndim == 2
            and a.flags.c_contiguous and a.size > 0)


def _pair(a: object, b: object, name_a: str, name_b: str) -> tuple[F32, F32]:
    if not _ready(a):
        a = as_float32_array(a, name_a, ndim=2, finite=False)
    if not _ready(b):
        b = as_float32_array(b, name_b, ndim=2, finite=False)
    if a.shape != b.shape:
        raise ValueError(f"{name_b} must have the shape of {name_a} {a.shape}, got {b.shape}")
    return a, b


def _loss_outputs(out: object, M: int, shape: tuple[int, ...], need_grad: bool,
                  what: str) -> LossOut:
    """New (loss, grad) arrays, or the caller's `out` = (loss, grad) checked."""
    if out is None:
        return (np.empty(M, dtype=np.float32),
                np.empty(shape, dtype=np.float32) if need_grad else None)
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError("out must be a tuple (loss, %s)" % what)
    loss = check_out(out[0], "out[0]", (M,))
    if not need_grad:
        if out[1] is not None:
            raise ValueError("out[1] must be None when need_grad is False")
        return loss, None
    return loss, check_out(out[1], "out[1]", shape)


def _run_loss(kernel: Callable[..., None], name: str, prediction: tuple[str, object],
              target: tuple[str, object], scale: object, need_grad: bool, out: object,
              grad_name: str) -> LossOut:
    """Checks, outputs and one fused kernel call of a two-operand loss;
    prediction and target are (argument name, value) pairs."""
    (pname, p), (tname, t) = prediction, target
    p, t = _pair(p, t, pname, tname)
    scale = as_float(scale, "scale")
    loss, grad = _loss_outputs(out, p.shape[0], p.shape, need_grad, grad_name)
    kernel(p, t, loss, grad, scale)
    if not np.isfinite(loss).all():
        nonfinite_result(name, [(pname, p, p), (tname, t, t)])
    return loss, grad


def bernoulli_loss(logits: ArrayLike, x: ArrayLike, scale: float = 1.0, need_grad: bool = True,
                   *, out: Optional[LossOut] = None) -> LossOut:
    """Per-row Bernoulli negative log-likelihood with logits, and its gradient.

    loss[i] = Σ_j softplus(logits[i, j]) − x[i, j]·logits[i, j], computed
    stably for any finite logit; dlogits = scale·(sigmoid(logits) − x),
    computed in the same pass.

    Parameters
    ----------
    logits : array_like, shape (M, N)
    x : array_like, shape (M, N)
        Targets, usually in [0, 1].
    scale : float
        Factor applied to the gradient (e.g. 1/M for a mean over the batch).
    need_grad : bool
        If False, the gradient is not computed and None is returned for it.
    out : tuple (loss, dlogits), optional
        Preallocated float32 C-contiguous outputs (dlogits None when
        need_grad is False), overwritten and returned; saves the page faults
        of fresh large arrays.

    Returns
    -------
    loss : ndarray, float32, shape (M,)
    dlogits : ndarray, float32, shape (M, N), or None
    """
    return _run_loss(_core.bernoulli_loss_into, "bernoulli_loss", ("logits", logits),
                     ("x", x), scale, need_grad, out, "dlogits")


def gaussian_loss(y: ArrayLike, x: ArrayLike, scale: float = 1.0, need_grad: bool = True,
                  *, out: Optional[LossOut] = None) -> LossOut:
    """Per-row unit-variance Gaussian negative log-likelihood, and its gradient.

    loss[i] = Σ_j 0.5·(y[i, j] − x[i, j])² + 0.5·log(2π); dy = scale·(y − x).

    Parameters
    ----------
    y : array_like, shape (M, N)
        Predicted means.
    x : array_like, shape (M, N)
        Targets.
    scale : float
        Factor applied to the gradient.
    need_grad : bool
        If False, the gradient is not computed and None is returned for it.
    out : tuple (loss, dy), optional
        Preallocated outputs, as for `bernoulli_loss`.

    Returns
    -------
    loss : ndarray, float32, shape (M,)
    dy : ndarray, float32, shape (M, N), or None
    """
    return _run_loss(_core.gaussian_loss_into, "gaussian_loss", ("y", y), ("x", x), scale,
                     need_grad, out, "dy")


def kl_normal(mu: ArrayLike, logvar: ArrayLike, *, out: Optional[F32] = None) -> F32:
    """Per-row KL(N(mu, exp(logvar)) ‖ N(0, I)) = 0.5·Σ_j (exp(lv) + mu² − 1 − lv).

    Parameters
    ----------
    mu, logvar : array_like, shape (M, N)
    out : ndarray, float32, shape (M,), optional
        Preallocated output, overwritten and returned.

    Returns
    -------
    kl : ndarray, float32, shape (M,)
    """
    mu, logvar = _pair(mu, logvar, "mu", "logvar")
    kl = (np.empty(mu.shape[0], dtype=np.float32) if out is None
          else check_out(out, "out", (mu.shape[0],)))
    _core.kl_normal_into(mu, logvar, kl)
    if not np.isfinite(kl).all():
        nonfinite_result("kl_normal", [("mu", mu, mu), ("logvar", logvar, logvar)])
    return kl


def _state(arr: object, name: str, shape: Optional[tuple[int, ...]] = None) -> F32:
    """A float32, C-contiguous, writeable ndarray that can be updated in place."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray updated in place, "
                        f"got {type(arr).__name__}")
    if arr.dtype != np.float32:
        raise TypeError(f"{name} must have dtype float32 to be updated in place, got {arr.dtype}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous to be updated in place")
    if not arr.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} must have the shape of param {shape}, got {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    return require_finite(arr.reshape(-1), name)


def _grad(grad: object, shape: tuple[int, ...]) -> F32:
    g = as_float32_array(grad, "grad", finite=False)
    if g.shape != shape:
        raise ValueError(f"grad must have the shape of param {shape}, got {g.shape}")
    return require_finite(g.reshape(-1), "grad")


def _beta(value: object, name: str) -> float:
    value = as_float(value, name, minimum=0.0)
    if value >= 1.0:
        raise ValueError(f"{name} must be < 1, got {value}")
    return value


def adam_update(param: F32, grad: ArrayLike, m: F32, v: F32, lr: float = 1e-3,
                beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                weight_decay: float = 0.0, step: int = 1) -> None:
    """One Adam step in place (AdamW-style decoupled weight decay).

    With b1 = beta1, b2 = beta2, t = step::

        param ← param·(1 − lr·weight_decay)
        m ← b1·m + (1 − b1)·grad;   v ← b2·v + (1 − b2)·grad²
        param ← param − lr/(1 − b1^t) · m / (sqrt(v)/sqrt(1 − b2^t) + eps)

    which is torch.optim.AdamW (and torch.optim.Adam when weight_decay = 0).

    Parameters
    ----------
    param, m, v : ndarray, float32, C-contiguous, any common shape
        Updated in place.
    grad : array_like, same shape as param
    lr, eps, weight_decay : float, >= 0
    beta1, beta2 : float in [0, 1)
    step : int, >= 1
        The 1-based step number t used for the bias corrections.
    """
    p = _state(param, "param")
    shape = param.shape
    m_ = _state(m, "m", shape)
    v_ = _state(v, "v", shape)
    g = _grad(grad, shape)
    _core.adam_update_flat(p, g, m_, v_, as_float(lr, "lr", minimum=0.0),
                           _beta(beta1, "beta1"), _beta(beta2, "beta2"),
                           as_float(eps, "eps", minimum=0.0),
                           as_float(weight_decay, "weight_decay", minimum=0.0),
                           as_int(step, "step", minimum=1))


def sgd_update(param: F32, grad: ArrayLike, velocity: F32, lr: float, momentum: float = 0.9,
               weight_decay: float = 0.0) -> None:
    """One SGD-with-momentum step in place (PyTorch convention, no dampening).

    ::

        g' = grad + weight_decay·param
        velocity ← momentum·velocity + g';   param ← param − lr·velocity

    Parameters
    ----------
    param, velocity : ndarray, float32, C-contiguous, same shape
        Updated in place (start velocity at zeros).
    grad : array_like, same shape as param
    lr, momentum, weight_decay : float, >= 0
    """
    p = _state(param, "param")
    shape = param.shape
    vel = _state(velocity, "velocity", shape)
    g = _grad(grad, shape)
    _core.sgd_update_flat(p, g, vel, as_float(lr, "lr", minimum=0.0),
                          as_float(momentum, "momentum", minimum=0.0),
                          as_float(weight_decay, "weight_decay", minimum=0.0))
