"""The VAE class: a thin shell over the C model (csrc/vae.c).

No math happens here beyond bookkeeping and the float64 density terms of the
evaluation methods (ELBO, importance-weighted log-likelihood); every forward
and backward pass and every optimizer step is one call into the core.
"""

import math
import threading

import numpy as np

from . import _core
from . import reference as _reference
from ._validation import as_float, as_float32_array, as_int, as_seed

__all__ = ["VAE", "History", "NonFiniteError"]

NonFiniteError = _core.NonFiniteError

_LIKELIHOODS = ("bernoulli", "gaussian")
# Rows per core call in inference: bounds the per-call workspace (and the
# decoder's chunk·K rows in log_likelihood) to a few MB.
_INFER_CHUNK = 4096
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class History:
    """Per-epoch training record returned by :meth:`VAE.fit`.

    Attributes
    ----------
    history : dict of str -> list of float
        ``loss`` (mean training negative ELBO, ``recon + beta·KL``),
        ``recon``, ``kl``, ``val_loss`` (NaN without validation data) and
        ``seconds`` (wall time of the epoch), one entry per epoch.
    epochs : list of int
        Global epoch numbers (they continue across calls to ``fit``).
    stopped_early : bool
        Whether early stopping or a callback ended training.
    """

    KEYS = ("loss", "recon", "kl", "val_loss", "seconds")

    def __init__(self):
        self.history = {k: [] for k in self.KEYS}
        self.epochs = []
        self.stopped_early = False

    def _append(self, epoch, logs):
        self.epochs.append(epoch)
        for k in self.KEYS:
            self.history[k].append(float(logs[k]))

    def __len__(self):
        return len(self.epochs)

    def __repr__(self):
        lines = ["epoch        loss       recon          kl    val_loss   seconds"]
        for i, e in enumerate(self.epochs):
            h = {k: self.history[k][i] for k in self.KEYS}
            lines.append(f"{e:5d} {h['loss']:11.4f} {h['recon']:11.4f} {h['kl']:11.4f} "
                         f"{h['val_loss']:11.4f} {h['seconds']:9.3f}")
        if self.stopped_early:
            lines.append("(stopped early)")
        return "\n".join(lines)

    __str__ = __repr__


def _as_widths(value, name):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    try:
        widths = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of positive integers") from None
    return tuple(as_int(w, f"{name}[{i}]", minimum=1) for i, w in enumerate(widths))


class VAE:
    """A variational autoencoder trained and run by vaefast's C core.

    Encoder: ReLU MLP ``n_features → hidden…``, then one linear head giving
    ``[mu | logvar]`` (logvar clamped to [-30, 30]); decoder: ReLU MLP
    ``latent_dim → decoder_hidden…`` and a linear output layer giving logits
    (Bernoulli) or the mean (unit-variance Gaussian).

    Parameters
    ----------
    n_features : int
        Input dimension D.
    hidden : sequence of int
        Encoder hidden widths (may be empty).
    latent_dim : int
        Latent dimension Z.
    likelihood : {"bernoulli", "gaussian"}
        p(x|z): Bernoulli with logits (targets in [0, 1]) or N(mean, I).
    beta : float
        Weight of the KL term (beta-VAE); 1 is the plain ELBO.
    seed : int
        Seeds the initialisation (PyTorch nn.Linear's default scheme), the
        reparameterization noise (a function of (seed, step)) and shuffling
        (a function of (seed, epoch)).
    decoder_hidden : sequence of int, optional
        Decoder hidden widths; default: ``hidden`` reversed.
    """

    def __init__(self, n_features, hidden=(400,), latent_dim=20, likelihood="bernoulli",
                 beta=1.0, seed=0, decoder_hidden=None):
        self.n_features = as_int(n_features, "n_features", minimum=1)
        self.hidden = _as_widths(hidden, "hidden")
        self.latent_dim = as_int(latent_dim, "latent_dim", minimum=1)
        if likelihood not in _LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {_LIKELIHOODS}, got {likelihood!r}")
        self.likelihood = likelihood
        self.beta = as_float(beta, "beta", minimum=0.0)
        self.seed = as_seed(seed)
        self.decoder_hidden = (tuple(reversed(self.hidden)) if decoder_hidden is None
                               else _as_widths(decoder_hidden, "decoder_hidden"))
        self._core = _core.VAECore(self.n_features, list(self.hidden),
                                   list(self.decoder_hidden), self.latent_dim,
                                   self.likelihood, self.beta)
        self._layout = self._make_layout()
        self._train_lock = threading.Lock()
        self._tls = threading.local()  # per-thread inference workspace
        self.step_ = 0       # optimizer steps taken (eps depends on (seed, step))
        self.epoch_ = 0      # epochs completed (shuffling depends on (seed, epoch))
        self.optimizer_ = None  # optimizer whose state the moment buffers hold
        params = _reference.init_params(self.n_features, self.hidden, self.latent_dim,
                                        self.decoder_hidden, seed=self.seed)
        self._core.set_buffer(0, np.concatenate(
            [a.ravel() for a in _reference.flatten(params)]).astype(np.float32))

    # ------------------------------------------------------------ layout
    def _make_layout(self):
        """[(name, n_in, n_out, w_offset, b_offset)] in the C buffer's order."""
        layers = []
        prev = self.n_features
        for i, h in enumerate(self.hidden):
            layers.append((f"encoder.{i}", prev, h))
            prev = h
        layers.append(("head", prev, 2 * self.latent_dim))
        prev = self.latent_dim
        for i, h in enumerate(self.decoder_hidden):
            layers.append((f"decoder.{i}", prev, h))
            prev = h
        layers.append(("output", prev, self.n_features))
        out, off = [], 0
        for name, n_in, n_out in layers:
            out.append((name, n_in, n_out, off, off + n_in * n_out))
            off += n_in * n_out + n_out
        assert off == self._core.num_params
        return out

    def _named_from_flat(self, flat):
        named = {}
        Z = self.latent_dim
        for name, n_in, n_out, w, b in self._layout:
            W = flat[w:w + n_in * n_out].reshape(n_in, n_out)
            bias = flat[b:b + n_out]
            if name == "head":
                named["mu.weight"], named["mu.bias"] = W[:, :Z].copy(), bias[:Z].copy()
                named["logvar.weight"], named["logvar.bias"] = W[:, Z:].copy(), bias[Z:].copy()
            else:
                named[f"{name}.weight"], named[f"{name}.bias"] = W.copy(), bias.copy()
        return named

    def _weight_shapes(self):
        shapes = {}
        Z = self.latent_dim
        for name, n_in, n_out, _, _ in self._layout:
            if name == "head":
                shapes.update({"mu.weight": (n_in, Z), "mu.bias": (Z,),
                               "logvar.weight": (n_in, Z), "logvar.bias": (Z,)})
            else:
                shapes[f"{name}.weight"] = (n_in, n_out)
                shapes[f"{name}.bias"] = (n_out,)
        return shapes

    def _flat_from_named(self, weights):
        if not isinstance(weights, dict):
            raise TypeError(f"weights must be a dict, got {type(weights).__name__}")
        shapes = self._weight_shapes()
        missing = [k for k in shapes if k not in weights]
        extra = [k for k in weights if k not in shapes]
        if missing:
            raise KeyError(f"weights is missing key {missing[0]!r}")
        if extra:
            raise KeyError(f"weights has unexpected key {extra[0]!r}")
        arrays = {}
        for k, shape in shapes.items():
            a = as_float32_array(weights[k], f"weights[{k!r}]", allow_empty=True)
            if a.shape != shape:
                raise ValueError(f"weights[{k!r}] must have shape {shape}, got {a.shape}")
            arrays[k] = a
        flat = np.empty(self._core.num_params, dtype=np.float32)
        Z = self.latent_dim
        for name, n_in, n_out, w, b in self._layout:
            W = flat[w:w + n_in * n_out].reshape(n_in, n_out)
            bias = flat[b:b + n_out]
            if name == "head":
                W[:, :Z], W[:, Z:] = arrays["mu.weight"], arrays["logvar.weight"]
                bias[:Z], bias[Z:] = arrays["mu.bias"], arrays["logvar.bias"]
            else:
                W[...] = arrays[f"{name}.weight"]
                bias[...] = arrays[f"{name}.bias"]
        return flat

    def get_weights(self):
        """All parameters as a dict of float32 copies.

        Keys: ``encoder.{i}.weight/bias``, ``mu.weight/bias``,
        ``logvar.weight/bias``, ``decoder.{i}.weight/bias``,
        ``output.weight/bias``; weights are shaped (in_features,
        out_features), biases (out_features,).
        """
        return self._named_from_flat(self._core.get_buffer(0))

    def set_weights(self, weights):
        """Replace all parameters (same keys and shapes as :meth:`get_weights`).

        Parameters
        ----------
        weights : dict of str -> array_like
            Every key of :meth:`get_weights`, weights shaped
            (in_features, out_features) and biases (out_features,).

        Raises
        ------
        KeyError, ValueError, TypeError
            Missing, extra or mis-shaped entries and non-finite values, with
            the key named; nothing is changed then.
        """
        flat = self._flat_from_named(weights)
        with self._exclusive("set_weights"):
            self._core.set_buffer(0, flat)

    def num_params(self):
        """Number of trainable parameters."""
        return int(self._core.num_params)

    # ------------------------------------------------------------ locking
    def _exclusive(self, what):
        model = self

        class _Guard:
            def __enter__(self):
                if not model._train_lock.acquire(blocking=False):
                    raise RuntimeError(f"{what}: this VAE is being trained by another "
                                       "thread (concurrent fit is not allowed)")

            def __exit__(self, *exc):
                model._train_lock.release()
                return False

        return _Guard()

    # ------------------------------------------------------------ checks
    def _check_X(self, X, name="X", targets=False):
        X = as_float32_array(X, name, ndim=2)
        if X.shape[1] != self.n_features:
            raise ValueError(f"{name} must have {self.n_features} columns (n_features), "
                             f"got {X.shape[1]}")
        if targets and self.likelihood == "bernoulli" and (X.min() < 0 or X.max() > 1):
            raise ValueError(f"{name} must lie in [0, 1] for the Bernoulli likelihood, "
                             f"got values in [{X.min()}, {X.max()}]")
        return X

    def _check_Z(self, Z, name="Z"):
        Z = as_float32_array(Z, name, ndim=2)
        if Z.shape[1] != self.latent_dim:
            raise ValueError(f"{name} must have {self.latent_dim} columns (latent_dim), "
                             f"got {Z.shape[1]}")
        return Z

    # ------------------------------------------------------------ inference
    def _scratch(self):
        """This thread's inference workspace for _INFER_CHUNK rows (reused, so
        repeated calls do not page-fault fresh memory; one per thread, so
        concurrent inference is safe)."""
        work = getattr(self._tls, "work", None)
        if work is None:
            work = self._tls.work = np.empty(self._core.work_size(_INFER_CHUNK), np.float32)
        return work

    def encode(self, X):
        """Parameters of q(z|x).

        Parameters
        ----------
        X : array_like, shape (n, n_features)

        Returns
        -------
        mu, logvar : ndarray, shape (n, latent_dim), float32
            logvar is clamped to [-30, 30], as in training.
        """
        X = self._check_X(X)
        if X.shape[0] <= _INFER_CHUNK:  # one core call, nothing else allocated
            return self._core.encode(X, self._scratch())
        mus, lvs = [], []
        for s in range(0, X.shape[0], _INFER_CHUNK):
            mu, lv = self._core.encode(X[s:s + _INFER_CHUNK], self._scratch())
            mus.append(mu)
            lvs.append(lv)
        if len(mus) == 1:
            return mus[0], lvs[0]
        return np.concatenate(mus), np.concatenate(lvs)

    def transform(self, X):
        """The posterior mean mu (the usual embedding).

        Parameters
        ----------
        X : array_like, shape (n, n_features)

        Returns
        -------
        mu : ndarray, shape (n, latent_dim), float32
        """
        return self.encode(X)[0]

    def _decode_raw(self, Z, mean):
        if Z.shape[0] <= _INFER_CHUNK:  # one core call, nothing else allocated
            return self._core.decode(Z, mean, self._scratch())
        return np.concatenate([self._core.decode(Z[s:s + _INFER_CHUNK], mean, self._scratch())
                               for s in range(0, Z.shape[0], _INFER_CHUNK)])

    def decode(self, Z):
        """Mean of p(x|z): probabilities (Bernoulli) or the Gaussian mean.

        Parameters
        ----------
        Z : array_like, shape (n, latent_dim)
        """
        return self._decode_raw(self._check_Z(Z), True)

    def reconstruct(self, X):
        """The mean reconstruction ``decode(transform(X))`` (no sampling).

        Parameters
        ----------
        X : array_like, shape (n, n_features)

        Returns
        -------
        ndarray, shape (n, n_features), float32
        """
        return self._decode_raw(self.transform(X), True)

    def sample(self, n, seed=None):
        """Draw samples from the model: z ~ N(0, I), then decode(z).

        Parameters
        ----------
        n : int, >= 1
            Number of samples.
        seed : int, optional
            Seed of the NumPy generator drawing z (fresh entropy if None).

        Returns
        -------
        ndarray, shape (n, n_features), float32
            Means of p(x|z): probabilities for the Bernoulli likelihood.
        """
        n = as_int(n, "n", minimum=1)
        rng = np.random.default_rng(None if seed is None else as_seed(seed))
        z = rng.standard_normal((n, self.latent_dim)).astype(np.float32)
        return self._decode_raw(z, True)

    # ------------------------------------------------------------ evaluation
    def _log_px(self, raw, X):
        """log p(x|z) per row in float64; raw = decoder output (logits/mean)."""
        raw = raw.astype(np.float64)
        X = X.astype(np.float64)
        if self.likelihood == "bernoulli":
            return -np.sum(_reference.softplus(raw) - X * raw, axis=1)
        d = raw - X
        return -np.sum(0.5 * d * d + _HALF_LOG_2PI, axis=1)

    def elbo(self, X, seed=None):
        """Per-sample ELBO, ``log p(x|z) − beta·KL(q(z|x) ‖ p(z))``, one z draw.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        seed : int, optional
            Seeds the NumPy generator drawing eps (fresh entropy if None).

        Returns
        -------
        ndarray, shape (n,), float64 (the plain ELBO when beta = 1).
        """
        X = self._check_X(X, targets=True)
        mu, lv = self.encode(X)
        rng = np.random.default_rng(None if seed is None else as_seed(seed))
        eps = rng.standard_normal(mu.shape).astype(np.float32)
        z = (mu + np.exp(0.5 * lv) * eps).astype(np.float32)
        log_px = self._log_px(self._decode_raw(z, False), X)
        mu64, lv64 = mu.astype(np.float64), lv.astype(np.float64)
        kl = 0.5 * np.sum(np.exp(lv64) + mu64 * mu64 - 1.0 - lv64, axis=1)
        return log_px - self.beta * kl

    def log_likelihood(self, X, n_samples=100, seed=None):
        """Importance-weighted estimate of log p(x) (Burda et al., IWAE bound).

        ``log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x)`` with K = n_samples draws
        z_k ~ q(z|x); a lower bound that tightens as K grows. Rows are
        processed in chunks; the decoder runs on chunk·K rows at once.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        n_samples : int, >= 1
            Importance samples per row (K).
        seed : int, optional
            Seed of the noise (fresh entropy if None).

        Returns
        -------
        ndarray, shape (n,), float64
        """
        X = self._check_X(X, targets=True)
        K = as_int(n_samples, "n_samples", minimum=1)
        rng = np.random.default_rng(None if seed is None else as_seed(seed))
        Zd = self.latent_dim
        chunk = max(1, _INFER_CHUNK // K)
        out = np.empty(X.shape[0])
        for s in range(0, X.shape[0], chunk):
            xb = X[s:s + chunk]
            c = xb.shape[0]
            mu, lv = self._core.encode(xb, self._scratch())
            eps = rng.standard_normal((c, K, Zd)).astype(np.float32)
            sigma = np.exp(0.5 * lv)
            z = (mu[:, None, :] + sigma[:, None, :] * eps).astype(np.float32)
            raw = self._decode_raw(np.ascontiguousarray(z.reshape(c * K, Zd)), False)
            log_px = self._log_px(raw, np.repeat(xb, K, axis=0)).reshape(c, K)
            z64, e64 = z.astype(np.float64), eps.astype(np.float64)
            log_pz = -0.5 * np.sum(z64 * z64, axis=2) - Zd * _HALF_LOG_2PI
            log_qz = (-0.5 * np.sum(e64 * e64, axis=2)
                      - 0.5 * np.sum(lv.astype(np.float64), axis=1)[:, None]
                      - Zd * _HALF_LOG_2PI)
            logw = log_px + log_pz - log_qz
            top = logw.max(axis=1, keepdims=True)
            out[s:s + c] = (top[:, 0] + np.log(np.mean(np.exp(logw - top), axis=1)))
        return out

    def loss_and_grad(self, X, eps=None):
        """Batch-mean negative ELBO (``recon + beta·KL``) and its gradients.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        eps : array_like, shape (n, latent_dim), optional
            Reparameterization noise; default: the core's generator at
            (seed, current step), i.e. what the next training step uses.

        Returns
        -------
        loss : float
        grads : dict keyed like :meth:`get_weights`
        """
        X = self._check_X(X, targets=True)
        if eps is not None:
            eps = as_float32_array(eps, "eps", ndim=2)
            if eps.shape != (X.shape[0], self.latent_dim):
                raise ValueError(f"eps must have shape {(X.shape[0], self.latent_dim)}, "
                                 f"got {eps.shape}")
        with self._exclusive("loss_and_grad"):
            loss, _, _ = self._core.loss_and_grad(X, eps, self.seed, self.step_, 1.0)
            grads = self._named_from_flat(self._core.get_buffer(1))
        return float(loss), grads

    # ------------------------------------------------------------ training
    def fit(self, X, epochs=10, batch_size=128, learning_rate=1e-3, optimizer="adam",
            shuffle=True, validation_data=None, early_stopping_patience=None,
            kl_warmup_epochs=0, callbacks=(), progress=None):
        """Train with minibatches (one C call per step, the GIL released).

        Calling fit again continues training: the step and epoch counters and
        the optimizer state persist.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
            Training data (in [0, 1] for the Bernoulli likelihood).
        epochs : int, >= 0
        batch_size : int, >= 1
        learning_rate : float, > 0
        optimizer : {"adam", "sgd"}
            Adam (0.9, 0.999, eps 1e-8) or SGD with momentum 0.9.
        shuffle : bool
            Seeded by (seed, epoch), so runs are reproducible and resumable.
        validation_data : array_like, optional
            Scored (mean negative ELBO) after every epoch.
        early_stopping_patience : int, optional
            Stop after this many epochs without improvement and restore the
            best weights.
        kl_warmup_epochs : int, >= 0
            Ramp the KL gradient's weight linearly over this many epochs.
        callbacks : sequence of callables
            ``cb(epoch, logs)`` after each epoch; returning True stops.
        progress : bool, optional
            Progress bar on stderr (default: only on a terminal).

        Returns
        -------
        History
            Per-epoch loss, recon, kl, val_loss and seconds.

        See :func:`vaefast.train.fit` for the details and the exceptions.
        """
        from .train import fit as _fit

        return _fit(self, X, epochs=epochs, batch_size=batch_size,
                    learning_rate=learning_rate, optimizer=optimizer, shuffle=shuffle,
                    validation_data=validation_data,
                    early_stopping_patience=early_stopping_patience,
                    kl_warmup_epochs=kl_warmup_epochs, callbacks=callbacks,
                    progress=progress)

    # ------------------------------------------------------------ persistence
    def get_config(self):
        """Constructor arguments as a JSON-serialisable dict."""
        return {"n_features": self.n_features, "hidden": list(self.hidden),
                "latent_dim": self.latent_dim, "likelihood": self.likelihood,
                "beta": self.beta, "seed": self.seed,
                "decoder_hidden": list(self.decoder_hidden)}

    def save(self, path, format="npz"):
        """Write the model (config, weights, optimizer state, counters).

        Parameters
        ----------
        path : str or os.PathLike
            The file written: exactly this name (no suffix added). It is
            written to a temporary file beside it and renamed, so an existing
            model is replaced atomically.
        format : {"npz", "safetensors"}
            ``"npz"`` (default): vaefast's own .npz-based format;
            ``"safetensors"``: the weights under their :meth:`get_weights`
            names, the configuration and counters in the metadata (readable
            by any safetensors reader). Both: docs/model-format.md.
        """
        from ._serialize import save_model

        with self._exclusive("save"):
            save_model(self, path, format)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save` (no code is ever executed).

        The format (npz or safetensors) is detected from the file's first
        bytes, not its name.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        VAE
            With its weights, optimizer state and step/epoch counters, so
            that fit continues exactly where the saved model stopped.

        Raises
        ------
        ValueError
            If the file is corrupt, truncated, tampered with or not a vaefast
            model.
        """
        from ._serialize import load_model

        return load_model(cls, path)

    def to_onnx(self, path, part="vae", opset=17):
        """Write the model (or its encoder or decoder) as an ONNX graph; see
        :func:`vaefast.interop.to_onnx` for the graph names and shapes."""
        from .interop import to_onnx

        return to_onnx(self, path, part=part, opset=opset)

    def __repr__(self):
        return (f"VAE(n_features={self.n_features}, hidden={self.hidden}, "
                f"latent_dim={self.latent_dim}, likelihood={self.likelihood!r}, "
                f"beta={self.beta}, seed={self.seed}, decoder_hidden={self.decoder_hidden})")
