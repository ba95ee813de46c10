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

from .dask import dask_aware as _dask_aware
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


class VAETransformer(TransformerMixin, BaseEstimator):
    """A variational autoencoder as a scikit-learn transformer.

    ``transform`` gives the posterior means (n, latent_dim); ``score_samples``
    the ELBO per row.

    Parameters
    ----------
    hidden : tuple of int
        Encoder hidden widths (the decoder mirrors them).
    latent_dim : int
    likelihood : {"bernoulli", "gaussian"}
        Bernoulli needs data in [0, 1] (e.g. after MinMaxScaler(clip=True)).
    beta : float
        Weight of the KL term.
    epochs, batch_size, learning_rate
        Passed to :meth:`vaefast.VAE.fit`.
    random_state : int or None
        Seed of the weights and noise (None means 0: results are reproducible).

    Attributes
    ----------
    model_ : vaefast.VAE
    n_features_in_ : int
    history_ : vaefast.History
    """

    def __init__(self, hidden=(400,), latent_dim=20, likelihood="bernoulli", beta=1.0, epochs=10,
                 batch_size=128, learning_rate=1e-3, random_state=None):
        self.hidden = hidden
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.random_state = random_state

    def fit(self, X, y=None):
        """Train a fresh VAE on X.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        y : ignored

        Returns
        -------
        self
        """
        X = validate_data(self, X, dtype=np.float32, reset=True)
        if self.likelihood == "bernoulli" and (X.min() < 0 or X.max() > 1):
            raise ValueError("likelihood='bernoulli' needs X in [0, 1]: scale it (e.g. "
                             "MinMaxScaler(clip=True)) or use likelihood='gaussian'")
        self.model_ = VAE(X.shape[1], hidden=tuple(np.atleast_1d(self.hidden).tolist()),
                          latent_dim=self.latent_dim, likelihood=self.likelihood, beta=self.beta,
                          seed=_seed_from(self.random_state))
        self.history_ = self.model_.fit(X, epochs=self.epochs, batch_size=self.batch_size,
                                        learning_rate=self.learning_rate, progress=False)
        return self

    def _X(self, X):
        check_is_fitted(self, "model_")
        return validate_data(self, X, dtype=np.float32, reset=False)

    @_dask_aware
    def transform(self, X):
        """Posterior means (the embedding).

        Parameters
        ----------
        X : array_like, shape (n, n_features_in_)

        Returns
        -------
        ndarray, shape (n, latent_dim), float32
        """
        return self.model_.transform(self._X(X))

    def inverse_transform(self, X):
        """Decode latent codes to data space (the means of p(x|z)).

        Parameters
        ----------
        X : array_like, shape (n, latent_dim)

        Returns
        -------
        ndarray, shape (n, n_features_in_), float32
        """
        check_is_fitted(self, "model_")
        return self.model_.decode(X)  # validated there: dtype, shape, finiteness

    @_dask_aware
    def score_samples(self, X):
        """ELBO of each row (one Monte-Carlo sample).

        The noise of a row is seeded by a CRC of the row's bytes, so a row gets
        the same score whatever batch, order or subset it comes in.

        Parameters
        ----------
        X : array_like, shape (n, n_features_in_)

        Returns
        -------
        ndarray, shape (n,), float64
        """
        X = self._X(X)
        m = self.model_
        if m.likelihood == "bernoulli" and (X.min() < 0 or X.max() > 1):
            raise ValueError("likelihood='bernoulli' scores need X in [0, 1]")
        mu, lv = m.encode(X)
        eps = np.stack([np.random.default_rng([_SCORE_SEED, zlib.crc32(row.tobytes())])
                        .standard_normal(m.latent_dim) for row in X]).astype(np.float32)
        z = (mu + np.exp(0.5 * lv) * eps).astype(np.float32)
        log_px = m._log_px(m._decode_raw(z, False), X)
        mu64, lv64 = mu.astype(np.float64), lv.astype(np.float64)
        kl = 0.5 * np.sum(np.exp(lv64) + mu64 * mu64 - 1.0 - lv64, axis=1)
        return log_px - m.beta * kl

    def score(self, X, y=None):
        """Mean ELBO of X (higher is better), as used by GridSearchCV.

        Parameters
        ----------
        X : array_like, shape (n, n_features_in_)
        y : ignored

        Returns
        -------
        float
        """
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples=1, random_state=None):
        """Draw rows from the model.

        Parameters
        ----------
        n_samples : int, >= 1
        random_state : int, RandomState or None
            Seeds the latent draws (fresh entropy if None).

        Returns
        -------
        ndarray, shape (n_samples, n_features_in_), float32
        """
        check_is_fitted(self, "model_")
        return self.model_.sample(n_samples, seed=None if random_state is None
                                  else _seed_from(random_state))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        # The C core computes in float32 whatever the input dtype.
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
