"""scikit-learn wrapper: :class:`VAETransformer`, a VAE as a fit/transform estimator.

scikit-learn is imported only when this module is, so ``import vaefast``
never needs it.
"""

import zlib

import numpy as np

try:
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError('vaefast.sklearn needs scikit-learn >= 1.6: pip install "vaefast[sklearn]"'
                      ) from _exc

from ._spec import likelihoods
from ._validation import check_targets
from ._arrays import deferrable
from ._docstrings import shared_doc
from .model import VAE

# check name -> why vaefast does not pass it (keep this minimal and honest).
EXPECTED_FAILED_CHECKS = {}

_SCORE_SEED = 12345  # fixed noise for score_samples: same rows -> same scores


def _seed_from(random_state):
    """None -> 0 (reproducible by default); an int as is; a RandomState draws one."""
    if random_state is None:
        return 0
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


# The parameter entries that several methods share (vaefast/_docstrings.py).
_Y_CONDITIONS = ("y : array_like, optional\n"
                 "            The conditions' source (conditional models only).")
_params_doc = shared_doc(
    y_conditions=_Y_CONDITIONS,
    params_X_y=("Parameters\n        ----------\n"
                "        X : array_like, shape (n, n_features_in_)\n        " + _Y_CONDITIONS))


class VAETransformer(TransformerMixin, BaseEstimator):
    """A variational autoencoder as a scikit-learn transformer.

    ``transform`` gives the posterior means (n, latent_dim); ``score_samples``
    the ELBO per row. With ``n_conditions`` > 0 it wraps a conditional VAE
    whose conditions come from ``y``: ``fit(X, y)``, ``transform(X, y)``,
    ``fit_transform(X, y)``, ``score_samples(X, y)``, ``inverse_transform(Z, y)``
    and ``sample(n, y=...)``, through ``condition_encoder``.

    Parameters
    ----------
    hidden : tuple of int
        Encoder hidden widths (the decoder mirrors them).
    latent_dim : int
    likelihood : {"bernoulli", "gaussian", "poisson", "negative_binomial"}
        Bernoulli needs data in [0, 1] (e.g. after MinMaxScaler(clip=True));
        the count likelihoods finite counts >= 0.
    beta : float
        Weight of the KL term.
    epochs, batch_size, learning_rate
        Passed to :meth:`vaefast.VAE.fit`.
    random_state : int or None
        Seed of the weights and noise (None means 0: results are reproducible).
    variance : {"unit", "feature", "sample"}
        Gaussian variance (see :class:`vaefast.VAE`).
    n_conditions : int
        Width of the condition vector (0: unconditional, y is ignored).
    condition_encoder : callable, optional
        ``y -> c`` of shape (n, n_conditions). Default: one-hot of the class
        labels seen by fit (``classes_``; there must be n_conditions of them).

    Attributes
    ----------
    model_ : vaefast.VAE
    n_features_in_ : int
    history_ : vaefast.History
    classes_ : ndarray
        The labels of the default one-hot condition encoder (conditional only).
    """

    def __init__(self, hidden=(400,), latent_dim=20, likelihood=likelihoods.DEFAULT, beta=1.0,
                 epochs=10, batch_size=128, learning_rate=1e-3, random_state=None, variance="unit",
                 n_conditions=0, condition_encoder=None):
        self.hidden = hidden
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.variance = variance
        self.n_conditions = n_conditions
        self.condition_encoder = condition_encoder

    def fit(self, X, y=None):
        """Train a fresh VAE on X.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        y : array_like, shape (n,) or (n, k), optional
            The conditions' source (required when n_conditions > 0, else
            ignored).

        Returns
        -------
        self
        """
        X = validate_data(self, X, dtype=np.float32, reset=True)
        check_targets(X, self.likelihood)
        c = self._conditions(y, X.shape[0], fitting=True)
        self.model_ = VAE(X.shape[1], hidden=tuple(np.atleast_1d(self.hidden).tolist()),
                          latent_dim=self.latent_dim, likelihood=self.likelihood, beta=self.beta,
                          seed=_seed_from(self.random_state), variance=self.variance,
                          n_conditions=self.n_conditions)
        self.history_ = self.model_.fit(X, c=c, epochs=self.epochs, batch_size=self.batch_size,
                                        learning_rate=self.learning_rate, progress=False)
        return self

    def _conditions(self, y, n, fitting=False):
        """c (n, n_conditions) from y, or None for an unconditional model."""
        if not self.n_conditions:
            return None
        if y is None:
            raise ValueError(f"y is required: this VAETransformer is conditional "
                             f"(n_conditions={self.n_conditions}) and y gives the conditions")
        if self.condition_encoder is not None:
            c = np.asarray(self.condition_encoder(y), dtype=np.float32)
            if c.shape != (n, self.n_conditions):
                raise ValueError(f"condition_encoder(y) must have shape ({n}, "
                                 f"{self.n_conditions}), got {c.shape}")
            return c
        y = np.asarray(y)
        if y.shape != (n,):
            raise ValueError(f"y must hold one label per row, shape ({n},), got {y.shape}")
        if fitting:
            self.classes_ = np.unique(y)
            if len(self.classes_) != self.n_conditions:
                raise ValueError(f"y has {len(self.classes_)} classes but n_conditions="
                                 f"{self.n_conditions} (the default one-hot encoder needs one "
                                 "column per class; or pass condition_encoder)")
        idx = np.searchsorted(self.classes_, y)
        idx = np.minimum(idx, len(self.classes_) - 1)
        unknown = self.classes_[idx] != y
        if unknown.any():
            raise ValueError(f"y has labels not seen in fit, e.g. {y[unknown][0]!r}")
        return np.eye(self.n_conditions, dtype=np.float32)[idx]

    def fit_transform(self, X, y=None, **fit_params):
        """fit(X, y) then transform(X, y) (y gives a conditional model's conditions).

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        y : array_like, optional

        Returns
        -------
        ndarray, shape (n, latent_dim), float32
        """
        return self.fit(X, y, **fit_params).transform(X, y)

    def _X(self, X):
        check_is_fitted(self, "model_")
        return validate_data(self, X, dtype=np.float32, reset=False)

    @deferrable
    @_params_doc
    def transform(self, X, y=None):
        """Posterior means (the embedding).

        {params_X_y}

        Returns
        -------
        ndarray, shape (n, latent_dim), float32
        """
        X = self._X(X)
        return self.model_.transform(X, self._conditions(y, X.shape[0]))

    @_params_doc
    def inverse_transform(self, X, y=None):
        """Decode latent codes to data space (the means of p(x|z)).

        Parameters
        ----------
        X : array_like, shape (n, latent_dim)
        {y_conditions}

        Returns
        -------
        ndarray, shape (n, n_features_in_), float32
        """
        check_is_fitted(self, "model_")
        c = self._conditions(y, np.shape(X)[0]) if self.n_conditions else None
        return self.model_.decode(X, c)  # validated there: dtype, shape, finiteness

    @deferrable
    @_params_doc
    def score_samples(self, X, y=None):
        """ELBO of each row (one Monte-Carlo sample).

        The noise of a row is seeded by a CRC of the row's bytes, so a row gets
        the same score whatever batch, order or subset it comes in.

        {params_X_y}

        Returns
        -------
        ndarray, shape (n,), float64
        """
        X = self._X(X)
        m = self.model_
        eps = np.stack([np.random.default_rng([_SCORE_SEED, zlib.crc32(row.tobytes())])
                        .standard_normal(m.latent_dim) for row in X]).astype(np.float32)
        return m.elbo(X, eps=eps, c=self._conditions(y, X.shape[0]))

    @_params_doc
    def score(self, X, y=None):
        """Mean ELBO of X (higher is better), as used by GridSearchCV.

        {params_X_y}

        Returns
        -------
        float
        """
        return float(np.mean(self.score_samples(X, y)))

    def sample(self, n_samples=1, random_state=None, y=None):
        """Draw rows from the model.

        Parameters
        ----------
        n_samples : int, >= 1
        random_state : int, RandomState or None
            Seeds the latent draws (fresh entropy if None).
        y : array_like, shape (n_samples,) or as condition_encoder takes
            The condition of each sample (conditional models only).

        Returns
        -------
        ndarray, shape (n_samples, n_features_in_), float32
        """
        check_is_fitted(self, "model_")
        c = self._conditions(y, n_samples) if self.n_conditions else None
        return self.model_.sample(n_samples, seed=None if random_state is None
                                  else _seed_from(random_state), c=c)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        # The C core computes in float32 whatever the input dtype.
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
