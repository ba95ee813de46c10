"""The likelihoods' NumPy maths, in float64: the registry's hooks.

``log p(x|z)`` and the mean of p(x|z) for each likelihood (the densities
the C loss kernels train on, every constant included) and the
importance-weighted (IWAE) bound used by :meth:`VAE.log_likelihood`. Training and :meth:`VAE.elbo`
never come here: the fused kernels in csrc/ compute the loss per row.
"""

import math

from typing import Literal, Optional, cast

import numpy as np

from .._typing import ArrayLike, F64, Floats
from .limits import LIMITS

Variance = Literal["unit", "feature", "sample"]

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def softplus(a: Floats) -> Floats:
    """log(1 + exp(a)), stable for any finite a."""
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def lgamma(y: ArrayLike) -> F64:
    """log Γ(y) for y > 0, float64, elementwise (NumPy has no lgamma).

    Shift y to >= 8 with Γ(y + 1) = y·Γ(y), then Stirling's series (absolute
    error below 1e-11)."""
    y = np.array(y, dtype=np.float64)
    log_prod = np.zeros_like(y)
    for _ in range(8):
        small = y < 8.0
        if not small.any():
            break
        log_prod[small] += np.log(y[small])
        y[small] += 1.0
    r = 1.0 / y
    r2 = r * r
    series = r * (1.0 / 12 - r2 * (1.0 / 360 - r2 * (1.0 / 1260 - r2 / 1680)))
    return cast(F64, (y - 0.5) * np.log(y) - y + HALF_LOG_2PI + series - log_prod)


# Each log_px(out, X, extra, size_factors, variance) -> log p(x|z) per row
# (float64) from the decoder's output layer `out` (n, D), or (n, 2D) with
# variance="sample"; X (n, D); extra (D,) the per-feature parameter (the
# log-variance with variance="feature", log θ for the negative binomial) or
# None; size_factors (n,) or None (count likelihoods: mean = s·exp(out)).
# The registry (likelihoods.py) names which is which.
def bernoulli_log_px(out: Floats, X: Floats, extra: Optional[Floats],
                     size_factors: Optional[Floats], variance: str) -> F64:
    out, X = _f64(out, X)
    return cast(F64, -np.sum(softplus(out) - X * out, axis=1))


def gaussian_log_px(out: Floats, X: Floats, extra: Optional[Floats],
                    size_factors: Optional[Floats], variance: str) -> F64:
    out, X = _f64(out, X)
    if variance == "unit":
        d = out - X
        return cast(F64, -np.sum(0.5 * d * d + HALF_LOG_2PI, axis=1))
    D = X.shape[1]
    if variance == "sample":
        lv = out[:, D:]
    else:
        assert extra is not None, "variance='feature' needs the per-feature log-variance"
        lv = extra.astype(np.float64)[None, :]
    v = np.maximum(lv, LIMITS["gaussian_logvar_min"])
    d = out[:, :D] - X
    return cast(F64, -np.sum(0.5 * (d * d * np.exp(-v) + v) + HALF_LOG_2PI, axis=1))


def _log_mean(out: F64, size_factors: Optional[Floats]) -> F64:
    """eta = out + log s, the log-mean with size factors."""
    if size_factors is None:
        return out
    return out + np.log(size_factors.astype(np.float64))[:, None]


def poisson_log_px(out: Floats, X: Floats, extra: Optional[Floats],
                   size_factors: Optional[Floats], variance: str) -> F64:
    out, X = _f64(out, X)
    eta = np.minimum(_log_mean(out, size_factors), LIMITS["poisson_lograte_max"])
    return cast(F64, np.sum(X * eta - np.exp(eta) - lgamma(X + 1.0), axis=1))


def negative_binomial_log_px(out: Floats, X: Floats, extra: Optional[Floats],
                             size_factors: Optional[Floats], variance: str) -> F64:
    assert extra is not None, "the negative binomial needs log θ"
    out, X = _f64(out, X)
    rho = np.clip(extra.astype(np.float64), LIMITS["log_theta_min"], LIMITS["log_theta_max"])
    theta = np.exp(rho)[None, :]
    a = _log_mean(out, size_factors) - rho[None, :]  # log(mean / θ)
    return cast(F64, np.sum(lgamma(X + theta) - lgamma(theta) - lgamma(X + 1.0)
                            - theta * softplus(a) - X * softplus(-a), axis=1))


def _scvi_terms(out: Floats, X: Floats, extra: Optional[Floats],
                size_factors: Optional[Floats]) -> tuple[F64, F64, Optional[F64]]:
    """scVI's mean (scvi-tools DecoderSCVI): log mu = log L + log_softmax(rho),
    rho = out[:, :D], L = size_factors or the row totals of X. Returns
    (X, log mu, clamped log θ (1, D) or, per row, (n, D), or None) in float64."""
    X = cast(F64, X.astype(np.float64))
    rho = out[:, :X.shape[1]].astype(np.float64)
    lib = X.sum(axis=1) if size_factors is None else size_factors.astype(np.float64)
    top = rho.max(axis=1, keepdims=True)
    lse = top + np.log(np.exp(rho - top).sum(axis=1, keepdims=True))
    log_mu = cast(F64, np.log(lib)[:, None] + rho - lse)
    if extra is None:
        return X, log_mu, None
    return X, log_mu, np.atleast_2d(np.clip(extra.astype(np.float64),
                                            LIMITS["log_theta_min"], LIMITS["log_theta_max"]))


def _log_nb(X: F64, log_mu: F64, log_theta: F64) -> F64:
    """Elementwise log NB(X; mu, θ), stable: softplus of a = log(mu/θ)."""
    theta = np.exp(log_theta)
    a = log_mu - log_theta
    return (lgamma(X + theta) - lgamma(theta) - lgamma(X + 1.0)
            - theta * softplus(a) - X * softplus(-a))


def scvi_poisson_log_px(out: Floats, X: Floats, extra: Optional[Floats],
                        size_factors: Optional[Floats], variance: str) -> F64:
    X, log_mu, _ = _scvi_terms(out, X, None, size_factors)
    return cast(F64, np.sum(X * log_mu - np.exp(log_mu) - lgamma(X + 1.0), axis=1))


def scvi_nb_log_px(out: Floats, X: Floats, extra: Optional[Floats],
                   size_factors: Optional[Floats], variance: str) -> F64:
    X, log_mu, log_theta = _scvi_terms(out, X, extra, size_factors)
    assert log_theta is not None, "the scVI NB needs log θ"
    return cast(F64, np.sum(_log_nb(X, log_mu, log_theta), axis=1))


def zinb_log_px(out: Floats, X: Floats, extra: Optional[Floats],
                size_factors: Optional[Floats], variance: str) -> F64:
    """ZINB with zero-inflation logits w = out[:, D:2D]: a zero is
    log(sigmoid(w) + sigmoid(−w)·NB(0)) = logaddexp(w, log NB(0)) − softplus(w);
    a count x > 0 is log NB(x) − softplus(w)."""
    X, log_mu, log_theta = _scvi_terms(out, X, extra, size_factors)
    assert log_theta is not None, "the ZINB needs log θ"
    w = out[:, X.shape[1]:2 * X.shape[1]].astype(np.float64)
    log_nb0 = -np.exp(log_theta) * softplus(log_mu - log_theta)
    nonzero = X > 0
    # lgamma only where the count is non-zero (the zero case needs none)
    log_nb = np.where(nonzero, _log_nb(np.where(nonzero, X, 1.0), log_mu, log_theta), 0.0)
    return cast(F64, np.sum(np.where(nonzero, log_nb, np.logaddexp(w, log_nb0)) - softplus(w),
                            axis=1))


def _f64(out: Floats, X: Floats) -> tuple[F64, F64]:
    return out.astype(np.float64), X.astype(np.float64)


# Each mean(out, D, size_factors) -> the mean of p(x|z) (what VAE.decode
# returns) from the output layer, in out's dtype.
def bernoulli_mean(out: Floats, D: int, size_factors: Optional[Floats]) -> Floats:
    return 1.0 / (1.0 + np.exp(-out))


def gaussian_mean(out: Floats, D: int, size_factors: Optional[Floats]) -> Floats:
    return out[:, :D]


def count_mean(out: Floats, D: int, size_factors: Optional[Floats]) -> Floats:
    mean = np.exp(np.minimum(out, LIMITS["poisson_lograte_max"]))
    return mean if size_factors is None else mean * size_factors[:, None]


def softmax_mean(out: Floats, D: int, size_factors: Optional[Floats]) -> Floats:
    """scVI's mean L·softmax(out[:, :D]); L = size_factors, or 1 (the
    normalised expression) without."""
    rho = out[:, :D]
    e = np.exp(rho - rho.max(axis=1, keepdims=True))
    mean = cast(Floats, e / e.sum(axis=1, keepdims=True))
    return mean if size_factors is None else mean * size_factors[:, None]


def iwae(log_px_rows: F64, z: Floats, eps: Floats, logvar: Floats) -> F64:
    """Per-row importance-weighted bound log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x).

    log_px_rows (n, K); z, eps (n, K, Z) with z = mu + exp(logvar/2)·eps;
    logvar (n, Z)."""
    Zd = z.shape[2]
    z64, e64 = z.astype(np.float64), eps.astype(np.float64)
    log_pz = -0.5 * np.sum(z64 * z64, axis=2) - Zd * HALF_LOG_2PI
    log_qz = (-0.5 * np.sum(e64 * e64, axis=2)
              - 0.5 * np.sum(logvar.astype(np.float64), axis=1)[:, None]
              - Zd * HALF_LOG_2PI)
    logw = log_px_rows + log_pz - log_qz
    top = logw.max(axis=1, keepdims=True)
    return cast(F64, top[:, 0] + np.log(np.mean(np.exp(logw - top), axis=1)))
