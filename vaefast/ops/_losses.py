"""Fused count and learned-variance likelihood kernels (csrc/likelihood.c).

Each returns the per-row negative log-probability (every constant included:
lgamma terms, 0.5·log 2π) and its gradients, computed in one pass. Inputs are
converted to C-contiguous float32; NaN/infinity and counts below zero are
rejected with a ValueError naming the argument.
"""

import numpy as np

from .. import _core
from .._docstrings import shared_doc
from .._validation import as_float, as_float32_array, as_size_factors, nonfinite_result

__all__ = ["poisson_loss", "negative_binomial_loss", "gaussian_var_loss", "LIMITS"]

LIMITS = dict(_core.LIKELIHOOD_LIMITS)
"""The clamps the kernels apply: the Poisson log-rate's maximum, the range of
log θ, and the floor of a learned Gaussian log-variance."""


# The tail of every loss's Parameters and the head of its Returns.
_loss_doc = shared_doc(scale_need_grad_loss="""scale : float
        Factor applied to the gradients.
    need_grad : bool
        If False, the gradients are None.

    Returns
    -------
    loss : ndarray, float32, shape (M,)""")


def _inputs(out, x, out_name, size_factors=None, counts=False):
    out = as_float32_array(out, out_name, ndim=2)
    x = as_float32_array(x, "x", ndim=2)
    if x.shape != out.shape:
        raise ValueError(f"x must have the shape of {out_name} {out.shape}, got {x.shape}")
    if counts and (x < 0).any():
        raise ValueError(f"x must be non-negative counts, got a minimum of {x.min()}")
    s = None if size_factors is None else as_size_factors(size_factors, out.shape[0])
    return out, x, s


def _outputs(shape, n_grads, need_grad):
    loss = np.empty(shape[0], dtype=np.float32)
    grads = [np.empty(shape, dtype=np.float32) if need_grad else None for _ in range(n_grads)]
    return loss, grads


@_loss_doc
def poisson_loss(out, x, size_factors=None, scale=1.0, need_grad=True):
    """Per-row Poisson negative log-likelihood with log-rate ``out``.

    rate = size_factor·exp(out) (log-rate clamped above at
    ``LIMITS["poisson_lograte_max"]``); loss[i] = Σ_j rate − x·log(rate) +
    lgamma(x + 1); dout = scale·(rate − x).

    Parameters
    ----------
    out : array_like, shape (M, N)
        Log-rates (the decoder's output).
    x : array_like, shape (M, N)
        Counts (finite, >= 0; need not be integers).
    size_factors : array_like, shape (M,), optional
        Per-row factors > 0 (default 1).
    {scale_need_grad_loss}
    dout : ndarray, float32, shape (M, N), or None
    """
    out, x, s = _inputs(out, x, "out", size_factors, counts=True)
    scale = as_float(scale, "scale")
    loss, (dout,) = _outputs(out.shape, 1, need_grad)
    _core.poisson_loss_into(out, x, s, loss, dout, scale)
    if not np.isfinite(loss).all():
        nonfinite_result("poisson_loss", [("out", out, out), ("x", x, x)])
    return loss, dout


@_loss_doc
def negative_binomial_loss(out, x, log_theta, size_factors=None, scale=1.0, need_grad=True):
    """Per-row negative-binomial negative log-likelihood.

    Mean μ = size_factor·exp(out), inverse dispersion θ = exp(log_theta)
    per feature (log θ clamped to ``LIMITS["log_theta_min"/"log_theta_max"]``),
    variance μ + μ²/θ. loss[i] = Σ_j −log NB(x; μ, θ) with every lgamma term.

    Parameters
    ----------
    out : array_like, shape (M, N)
        Log-means (the decoder's output).
    x : array_like, shape (M, N)
        Counts (finite, >= 0).
    log_theta : array_like, shape (N,)
    size_factors : array_like, shape (M,), optional
    {scale_need_grad_loss}
    dout : ndarray, float32, shape (M, N), or None
        scale·∂loss/∂out.
    dlog_theta : ndarray, float32, shape (M, N), or None
        scale·∂loss_i/∂log θ_j per element (sum over rows for the gradient).
    """
    out, x, s = _inputs(out, x, "out", size_factors, counts=True)
    lt = as_float32_array(log_theta, "log_theta", ndim=1)
    if lt.shape[0] != out.shape[1]:
        raise ValueError(f"log_theta must have {out.shape[1]} entries, got {lt.shape[0]}")
    scale = as_float(scale, "scale")
    loss, (dout, dlt) = _outputs(out.shape, 2, need_grad)
    _core.negbin_loss_into(out, x, s, lt, loss, dout, dlt, scale)
    if not np.isfinite(loss).all():
        nonfinite_result("negative_binomial_loss", [("out", out, out), ("x", x, x)])
    return loss, dout, dlt


@_loss_doc
def gaussian_var_loss(y, x, logvar, scale=1.0, need_grad=True):
    """Per-row Gaussian negative log-likelihood with a learned log-variance.

    v = max(logvar, ``LIMITS["gaussian_logvar_min"]``);
    loss[i] = Σ_j 0.5·((y − x)²·exp(−v) + v + log 2π).

    Parameters
    ----------
    y : array_like, shape (M, N)
        Means.
    x : array_like, shape (M, N)
        Targets.
    logvar : array_like, shape (M, N) or (N,)
        Per element, or one per feature shared by every row.
    {scale_need_grad_loss}
    dy : ndarray, float32, shape (M, N), or None
    dlogvar : ndarray, float32, shape (M, N), or None
        Per element (sum over rows for a per-feature log-variance); zero
        where logvar is below the floor and descent would lower it further.
    """
    y, x, _ = _inputs(y, x, "y")
    lv = as_float32_array(logvar, "logvar", ndim=(1, 2))
    lv2 = lv.reshape(1, -1) if lv.ndim == 1 else lv
    if lv2.shape[1] != y.shape[1] or (lv.ndim == 2 and lv.shape != y.shape):
        raise ValueError(f"logvar must have shape {y.shape} or ({y.shape[1]},), got {lv.shape}")
    scale = as_float(scale, "scale")
    loss, (dy, dlv) = _outputs(y.shape, 2, need_grad)
    _core.gaussian_var_loss_into(y, x, lv2, loss, dy, dlv, scale)
    if not np.isfinite(loss).all():
        nonfinite_result("gaussian_var_loss", [("y", y, y), ("x", x, x)])
    return loss, dy, dlv
