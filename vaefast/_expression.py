"""The scVI likelihoods' normalised expression (a mixin of VAE).

For the likelihoods with scVI's mean (``"zinb"``, ``"scvi_nb"``,
``"scvi_poisson"``: mean = library · softmax(rho), the registry's
``observed_library``) the decoder's softmax(rho) is a distribution over the
features of each row: scvi-tools calls it the normalised expression
(``SCVI.get_normalized_expression``; here the decoded latent mean, one
sample, no batch transform; or, with ``transform_batch`` and ``n_samples``,
decoded under another batch and averaged over posterior draws).
"""

from typing import TYPE_CHECKING, Any, Optional, Protocol

import numpy as np

from ._arrays import deferrable
from ._anndata_setup import with_batch
from ._covariate_codes import Side
from ._typing import ArrayLike, F32
from ._validation import as_float, as_int

if TYPE_CHECKING:
    from ._spec.likelihoods import Likelihood


class _Model(Protocol):
    """What the method uses of the VAE it is mixed into."""

    likelihood: str
    _lik: "Likelihood"
    anndata_setup_: Optional[dict[str, Any]]

    def _check_X(self, X: object, name: str = ..., targets: bool = ...) -> F32: ...
    def _check_c(self, c: object, n: int, name: str = ..., codes: object = ...) -> Side: ...
    def _encode_checked(self, X: F32, c: Side, precision: Optional[str]) -> tuple[F32, F32]: ...
    def _decode_raw(self, Z: F32, mean: bool, c: Side = ...,
                    size_factors: Optional[F32] = ...) -> F32: ...


class ExpressionMethods:
    """Methods of VAE that only the scVI-parameterised likelihoods have."""

    @deferrable
    def get_normalized_expression(self: _Model, X: ArrayLike, c: Optional[ArrayLike] = None,
                                  library_size: Optional[float] = None,
                                  transform_batch: object = None, n_samples: int = 1,
                                  seed: int = 0, codes: Optional[ArrayLike] = None) -> F32:
        """softmax(rho) of the decoded posterior mean, times `library_size`.

        For each row x: z = the encoder's mean for x (``transform``), rho =
        the decoder's output for z, and the result is softmax(rho) (each row
        sums to 1), or ``library_size`` · softmax(rho) (e.g. 1e4 for counts
        per 10,000). The library size of x itself plays no part: this is the
        expression the model infers for the cell at a common depth.

        Parameters
        ----------
        X : array_like, scipy sparse matrix or AnnData, shape (n, n_features)
            Counts (any values the encoder accepts; no targets are checked);
            sparse and AnnData input is read a chunk of rows at a time, and
            ``layer=`` names an AnnData layer, as for ``transform``.
        c : array_like, shape (n, n_conditions), for a conditional model
        library_size : float, > 0, optional
            Scale of every row (default 1: proportions).
        transform_batch : a category of the model's ``batch_key``, optional
            Decode every cell as if it came from this batch: the batch's
            one-hot replaces the batch columns of c (the model must be built
            by ``VAE.from_anndata(..., batch_key=...)``); the encoder still
            reads each cell's own c.
        n_samples : int, >= 1
            1 (default): decode the posterior mean z (deterministic; scvi-tools
            decodes one posterior draw instead). More: the average of the
            normalised expression of `n_samples` draws z ~ q(z|x) per cell.
        seed : int or numpy.random.Generator
            Seeds the draws when n_samples > 1 (rows draw in order, so the
            result does not depend on how the rows are chunked).
        codes : array_like of int, shape (n, K), for a model with K categorical covariates

        Returns
        -------
        ndarray, shape (n, n_features), float32

        Raises
        ------
        ValueError
            If the model's likelihood has no scVI mean (``likelihood`` is
            named), or `library_size` is not a finite positive number.
        """
        if not self._lik.observed_library:
            raise ValueError("get_normalized_expression needs a likelihood with scVI's "
                             "mean ('zinb', 'scvi_nb', 'scvi_poisson'), this VAE's "
                             f"likelihood is {self.likelihood!r}")
        if library_size is not None:
            library_size = as_float(library_size, "library_size", minimum=0.0, open_min=True)
        n_samples = as_int(n_samples, "n_samples", minimum=1)
        X = self._check_X(X)
        side = self._check_c(c, X.shape[0], codes=codes)
        s = None if library_size is None else np.full(X.shape[0], library_size, np.float32)
        c_out = side if transform_batch is None else with_batch(self.anndata_setup_, side,
                                                                  transform_batch)
        mu, logvar = self._encode_checked(X, side, None)
        if n_samples == 1:
            return self._decode_raw(mu, True, c_out, s)
        rng = np.random.default_rng(seed)
        eps = rng.standard_normal((X.shape[0], n_samples, mu.shape[1])).astype(np.float32)
        total = np.zeros(X.shape, np.float64)
        for k in range(n_samples):
            z = mu + np.exp(0.5 * logvar) * eps[:, k]
            total += self._decode_raw(z, True, c_out, s)
        return (total / n_samples).astype(np.float32)
