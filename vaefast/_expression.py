"""The scVI likelihoods' normalised expression (a mixin of VAE).

For the likelihoods with scVI's mean (``"zinb"``, ``"scvi_nb"``,
``"scvi_poisson"``: mean = library · softmax(rho), the registry's
``observed_library``) the decoder's softmax(rho) is a distribution over the
features of each row: scvi-tools calls it the normalised expression
(``SCVI.get_normalized_expression``; here the decoded latent mean, one
sample, no batch transform).
"""

import numpy as np

from ._validation import as_float


class ExpressionMethods:
    """Methods of VAE that only the scVI-parameterised likelihoods have."""

    def get_normalized_expression(self, X, c=None, library_size=None):
        """softmax(rho) of the decoded posterior mean, times `library_size`.

        For each row x: z = the encoder's mean for x (``transform``), rho =
        the decoder's output for z, and the result is softmax(rho) (each row
        sums to 1), or ``library_size`` · softmax(rho) (e.g. 1e4 for counts
        per 10,000). The library size of x itself plays no part: this is the
        expression the model infers for the cell at a common depth.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
            Counts (any values the encoder accepts; no targets are checked).
        c : array_like, shape (n, n_conditions), for a conditional model
        library_size : float, > 0, optional
            Scale of every row (default 1: proportions).

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
        X = self._check_X(X)
        c = self._check_c(c, X.shape[0])
        s = None if library_size is None else np.full(X.shape[0], library_size, np.float32)
        return self._decode_raw(self.transform(X, c), True, c, s)
