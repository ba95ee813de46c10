"""The VAE's evaluation methods (a mixin of VAE): the per-sample ELBO, the
importance-weighted log-likelihood and the loss with its gradients.

Each is one core call per chunk of rows (csrc/vae*.c); the IWAE maths is
vaefast/_spec/densities.py. Also the model's read session and inference
chunk, shared with vaefast/model.py.
"""

import functools
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Optional, TypeVar, cast

import numpy as np

from . import _core, _covariate_codes as _cov, _precision
from ._arrays import deferrable
from ._spec.densities import iwae as _iwae
from ._typing import ArrayLike, F32, F64
from ._validation import as_float32_array, as_int, noise_generator as _noise_generator

if TYPE_CHECKING:
    from .model import VAE

_M = TypeVar("_M", bound=Callable[..., Any])


# Rows per core call in inference: bounds the per-call workspace (and the
# decoder's chunk·K rows in log_likelihood) to a few MB.
_INFER_CHUNK = 4096


def _reads_weights(method: _M) -> _M:
    """Run `method` inside the core's read session: all its C calls see the
    weights of one completed training step, even while another thread runs
    fit (docs/threads.md)."""

    @functools.wraps(method)
    def under_read_lock(self: "VAE", *args: Any, **kwargs: Any) -> Any:
        with self._core.reading():
            return method(self, *args, **kwargs)

    return cast(_M, under_read_lock)


class EvaluationMethods:
    """elbo, log_likelihood and loss_and_grad of VAE (and their checks)."""

    if TYPE_CHECKING:  # what these methods use of the VAE they are mixed into
        from ._spec.likelihoods import Likelihood

        _core: _core.VAECore
        _lik: Likelihood
        variance: str
        precision: str
        latent_dim: int
        seed: int
        step_: int

        def _extra_param(self) -> Optional[F32]: ...
        def _log_theta_rows(self, raw: "np.ndarray[Any, Any]",
                            side: _cov.Side) -> "Optional[np.ndarray[Any, Any]]": ...
        def _check_X(self, X: object, name: str = ..., targets: bool = ...) -> F32: ...
        def _check_c(self, c: object, n: int, name: str = ...,
                     codes: object = ...) -> _cov.Side: ...
        def _check_size_factors(self, size_factors: object, n: int) -> Optional[F32]: ...
        def _scratch(self, kind: str = ...) -> F32: ...
        def _decode_raw(self, Z: F32, mean: bool, c: _cov.Side = ...,
                        size_factors: Optional[F32] = ...,
                        precision: Optional[str] = ...) -> F32: ...
        def _exclusive(self, what: str) -> ContextManager[None]: ...
        def _named_from_flat(self, flat: F32) -> dict[str, F32]: ...

    def _log_px(self, raw: F32, X: F32, size_factors: Optional[F32] = None,
                side: _cov.Side = None) -> F64:
        """log p(x|z) per row in float64; raw = the decoder's output layer,
        side = the rows' checked side inputs (θ's row may depend on them)."""
        return self._lik.log_px(raw, X, self._log_theta_rows(raw, side), size_factors,
                                self.variance)

    @deferrable
    @_reads_weights
    def elbo(self, X: ArrayLike, seed: "int | np.random.Generator | None" = None,
             c: Optional[ArrayLike] = None, size_factors: Optional[ArrayLike] = None,
             eps: Optional[ArrayLike] = None, precision: Optional[str] = None,
             codes: Optional[ArrayLike] = None) -> F64:
        """Per-sample ELBO, ``log p(x|z) − beta·KL(q(z|x) ‖ p(z))``, one z draw.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        seed : int or numpy.random.Generator, optional
            Seeds the NumPy generator drawing eps (fresh entropy if None);
            a Generator is used as is.
        c : array_like, shape (n, n_conditions), for a conditional model
        size_factors : array_like, shape (n,), optional (count likelihoods)
        eps : array_like, shape (n, latent_dim), optional
            The noise to use instead of drawing it (then seed is unused).
        precision : {"fp32", "bf16"}, optional (default: the model's)
        codes : array_like of int, shape (n, K), for a model with K categorical covariates

        Returns
        -------
        ndarray, shape (n,), float64 (the plain ELBO when beta = 1).
        """
        X, p = self._check_X(X, targets=True), _precision.code(self.precision, precision)
        side = self._check_c(c, X.shape[0], codes=codes)
        s = self._check_size_factors(size_factors, X.shape[0])
        if eps is None:
            rng = _noise_generator(seed)
            eps = rng.standard_normal((X.shape[0], self.latent_dim)).astype(np.float32)
        else:
            eps = self._check_eps(eps, X.shape[0])
        # one fused pass in the core (float32 layers and row sums, as training)
        return self._core.elbo(X, eps, self._scratch("elbo"), side, s, precision=p)

    @deferrable
    @_reads_weights
    def log_likelihood(self, X: ArrayLike, n_samples: int = 100,
                       seed: "int | np.random.Generator | None" = None,
                       c: Optional[ArrayLike] = None,
                       size_factors: Optional[ArrayLike] = None,
                       codes: Optional[ArrayLike] = None) -> F64:
        """Importance-weighted estimate of log p(x) (Burda et al., IWAE bound).

        ``log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x)`` with K = n_samples draws
        z_k ~ q(z|x); a lower bound that tightens as K grows. Rows are
        processed in chunks; the decoder runs on chunk·K rows at once.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        n_samples : int, >= 1
            Importance samples per row (K).
        seed : int or numpy.random.Generator, optional
            Seed of the noise (fresh entropy if None); a Generator is used
            as is.
        c : array_like, shape (n, n_conditions), for a conditional model
        size_factors : array_like, shape (n,), optional (count likelihoods)
        codes : array_like of int, shape (n, K), for a model with K categorical covariates

        Returns
        -------
        ndarray, shape (n,), float64
        """
        X = self._check_X(X, targets=True)
        side = self._check_c(c, X.shape[0], codes=codes)
        s = self._check_size_factors(size_factors, X.shape[0])
        K = as_int(n_samples, "n_samples", minimum=1)
        rng = _noise_generator(seed)
        Zd = self.latent_dim
        chunk = max(1, _INFER_CHUNK // K)
        out = np.empty(X.shape[0])

        def rep(a: Any, lo: int, n: int) -> Any:
            return _cov.repeat(_cov.take(a, slice(lo, lo + n)), K)

        for lo in range(0, X.shape[0], chunk):
            xb = X[lo:lo + chunk]
            n = xb.shape[0]
            mu, lv = self._core.encode(xb, self._scratch(), _cov.take(side, slice(lo, lo + n)),
                                       precision=_precision.CODES[self.precision])
            eps = rng.standard_normal((n, K, Zd)).astype(np.float32)
            sigma = np.exp(0.5 * lv)
            z = (mu[:, None, :] + sigma[:, None, :] * eps).astype(np.float32)
            raw = self._decode_raw(np.ascontiguousarray(z.reshape(n * K, Zd)), False,
                                   rep(side, lo, n))
            log_px = self._log_px(raw, np.repeat(xb, K, axis=0), rep(s, lo, n),
                                  rep(side, lo, n)).reshape(n, K)
            out[lo:lo + n] = _iwae(log_px, z, eps, lv)
        return out

    def _check_eps(self, eps: object, n: int) -> F32:
        eps = as_float32_array(eps, "eps", ndim=2)
        if eps.shape != (n, self.latent_dim):
            raise ValueError(f"eps must have shape {(n, self.latent_dim)}, got {eps.shape}")
        return eps

    def loss_and_grad(self, X: ArrayLike, eps: Optional[ArrayLike] = None,
                      c: Optional[ArrayLike] = None,
                      size_factors: Optional[ArrayLike] = None,
                      precision: Optional[str] = None,
                      codes: Optional[ArrayLike] = None) -> tuple[float, dict[str, F32]]:
        """Batch-mean negative ELBO (``recon + beta·KL``) and its gradients.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        eps : array_like, shape (n, latent_dim), optional
            Reparameterization noise; default: the core's generator at
            (seed, current step), i.e. what the next training step uses.
        c : array_like, shape (n, n_conditions), for a conditional model
        size_factors : array_like, shape (n,), optional (count likelihoods)
        precision : {"fp32", "bf16"}, optional (default: the model's)
        codes : array_like of int, shape (n, K), for a model with K categorical covariates

        Returns
        -------
        loss : float
        grads : dict keyed like :meth:`get_weights`
        """
        X, p = self._check_X(X, targets=True), _precision.code(self.precision, precision)
        side = self._check_c(c, X.shape[0], codes=codes)
        s = self._check_size_factors(size_factors, X.shape[0])
        if eps is not None:
            eps = self._check_eps(eps, X.shape[0])
        with self._exclusive("loss_and_grad"):
            loss, _, _ = self._core.loss_and_grad(X, eps, self.seed, self.step_, 1.0, side, s,
                                                  precision=p)
            grads = self._named_from_flat(self._core.get_buffer(_core.GRADS))
        return float(loss), grads
