"""The VAE class: a thin shell over the C model (csrc/vae*.c).

No math happens here beyond bookkeeping: the parameter layout is
vaefast/_layout.py, the evaluation maths of the importance-weighted
log-likelihood vaefast/_spec/densities.py; every forward and backward pass, the
per-sample ELBO and every optimizer step is one call into the core.
"""

import threading
from typing import (TYPE_CHECKING, Any, Callable, ContextManager, Literal, Mapping, Optional,
                    Sequence)

import numpy as np

from . import _core
from ._spec import likelihoods as _likelihoods
from ._spec.layout import Layout
from ._validation import (as_float, as_float32_array, as_int, as_seed, as_size_factors,
                          as_weight, as_widths as _as_widths)
from . import (_covariate_codes as _cov, _dispersion_options as _disp, _fit_options,
               _hidden_options, _precision)
from ._arrays import deferrable
from ._evaluation import _INFER_CHUNK, EvaluationMethods, _reads_weights
from ._expression import ExpressionMethods
from ._scvi_api import ScviToolsMethods
from .io.model_files import ModelFiles
from ._typing import ArrayLike, F32, StrPath

if TYPE_CHECKING:
    from .training.history import History

# A fit callback: cb(epoch, logs) -> True to stop
FitCallback = Callable[[int, dict[str, float]], object]

__all__ = ["VAE", "NonFiniteError"]

NonFiniteError = _core.NonFiniteError


class VAE(EvaluationMethods, ModelFiles, ExpressionMethods, ScviToolsMethods, _hidden_options.HiddenOptions):
    """A variational autoencoder trained and run by vaefast's C core.

    Encoder: ReLU MLP ``n_features → hidden…``, then one linear head giving
    ``[mu | logvar]`` (logvar clamped to [-30, 30]); decoder: ReLU MLP
    ``latent_dim → decoder_hidden…`` and a linear output layer giving logits
    (Bernoulli), the mean (Gaussian; plus a log-variance head with
    ``variance="sample"``), the log-rate (Poisson) or the log-mean (negative
    binomial). With ``n_conditions`` = C > 0 it is a conditional VAE: a
    condition vector c (n, C) joins the input of the encoder and of the
    decoder, and every method taking X (or Z) takes ``c=`` too. With
    ``categorical_covariates`` (levels per covariate) it has scVI's
    categorical covariates: every such method takes ``codes=`` (n, K), one
    integer code per row and covariate, added to the injected layers as
    rows of a table (a gather-add; the one-hot is never built).
    The models and their losses: docs/models.md.

    Threads (docs/threads.md): any number of threads may run the inference
    methods at once, also during ``fit``; each sees the weights of one whole
    training step (the C model's readers-writer lock). Writers (``fit``,
    ``set_weights``, ``loss_and_grad``, ``save``, ``to_bytes``) share one
    Python lock, ``_train_lock``, taken without waiting: a second writer
    gets RuntimeError. The same holds on a free-threaded Python, where
    vaefast runs without the GIL.

    Parameters
    ----------
    n_features : int
        Input dimension D.
    hidden : int or sequence of int
        Encoder hidden widths (may be empty).
    latent_dim : int
        Latent dimension Z.
    likelihood : {"bernoulli", "gaussian", "poisson", "negative_binomial", "zinb", ...}
        p(x|z): Bernoulli with logits (targets in [0, 1]); Gaussian; Poisson
        with rate s·exp(output); negative binomial with mean s·exp(output)
        and a learned inverse dispersion θ per feature (s: the per-row size
        factor, 1 unless ``size_factors=`` is given). Counts must be finite
        and >= 0; they need not be integers. The single-cell (scVI)
        likelihoods ``"zinb"``, ``"scvi_nb"``, ``"scvi_poisson"`` have scVI's
        mean library·softmax(output), library = the row's total count (or
        its size factor), ``"zinb"`` a second output head of zero-inflation
        logits; their counts must be integers, every row with a total > 0
        (docs/models.md; :meth:`get_normalized_expression`).
    beta : float
        Weight of the KL term (beta-VAE); 1 is the plain ELBO.
    seed : int
        Seeds the initialisation (PyTorch nn.Linear's default scheme), the
        reparameterization noise (a function of (seed, step)) and shuffling
        (a function of (seed, epoch)).
    decoder_hidden : int or sequence of int, optional
        Decoder hidden widths; default: ``hidden`` reversed.
    n_conditions : int, >= 0
        Width C of the condition vector (0: an unconditional VAE).
    variance : {"unit", "feature", "sample"}
        Gaussian only: variance 1 (the reported loss still includes
        0.5·log 2π per feature), one learned log-variance per feature, or a
        log-variance per sample and feature from a second output head; a
        learned log-variance is floored at -10 (in the kernel).
    precision : {"fp32", "bf16"}
        The layers' GEMMs in float32, or with bf16 operands and float32
        accumulation (docs/precision.md); saved with the model, used by
        every method. ``fit``, ``encode``, ``decode``, ``elbo``, ``sample``
        and ``loss_and_grad`` take ``precision=`` to override it for one call.
    dropout_rate, dropout_on, use_batch_norm, use_layer_norm
        Hidden-layer dropout and normalisation: vaefast/_hidden_options.py.
    categorical_covariates : int or sequence of int, >= 1 each
        Categories of each categorical covariate (the batch first, if any);
        default none. Named apart from scVI's ``n_cats_per_cov``, which
        leaves the batch out.
    deeply_inject_covariates : bool
        The covariates enter every hidden layer of a side (scVI's name and
        default), not only its first.
    encode_covariates : bool
        The encoder receives them too (scVI's name and default, False); the
        decoder always does.
    dispersion : {"gene", "gene-batch", "gene-label", "gene-cell"}
        What θ of ``"zinb"``/``"scvi_nb"`` depends on (scVI's name and
        modes): the gene; the gene and a covariate's code (the batch, column
        0, unless ``dispersion_covariate``); the gene and the label; the
        gene and the cell (a last output head, ``output_log_theta``). The
        tables are ``likelihood.log_theta_table``: vaefast/_dispersion_options.py.
    dispersion_covariate : int, optional
        The covariate whose code picks θ's row ("gene-batch", "gene-label").
    n_labels : int, optional
        "gene-label" as scVI does it: the labels, in [0, n_labels), ride as a
        last column of every ``codes=`` (n, K + 1), seen by no layer.
    """

    def __init__(self, n_features: int, hidden: "int | Sequence[int]" = (400,),
                 latent_dim: int = 20, likelihood: str = _likelihoods.DEFAULT,
                 beta: float = 1.0, seed: int = 0,
                 decoder_hidden: "int | Sequence[int] | None" = None, n_conditions: int = 0,
                 variance: str = "unit", precision: str = _precision.DEFAULT,
                 dropout_rate: float = 0.0, dropout_on: str = "both",
                 use_batch_norm: str = "none", use_layer_norm: str = "none",
                 categorical_covariates: "int | Sequence[int]" = (),
                 deeply_inject_covariates: bool = True, encode_covariates: bool = False,
                 dispersion: str = "gene", dispersion_covariate: Optional[int] = None,
                 n_labels: Optional[int] = None) -> None:
        self.n_features = as_int(n_features, "n_features", minimum=1)
        self.hidden = _as_widths(hidden, "hidden")
        self.latent_dim = as_int(latent_dim, "latent_dim", minimum=1)
        self._lik = _likelihoods.get(likelihood)
        self.likelihood = likelihood
        if variance not in _likelihoods.VARIANCES:
            raise ValueError(f"variance must be one of {_likelihoods.VARIANCES}, "
                             f"got {variance!r}")
        if variance not in self._lik.variances:
            having = [k for k, v in _likelihoods.REGISTRY.items() if variance in v.variances]
            raise ValueError(f"variance={variance!r} needs likelihood in {having}, "
                             f"got likelihood={likelihood!r}")
        self.variance = variance
        self.precision = _precision.check(precision)
        self.n_conditions = as_int(n_conditions, "n_conditions", minimum=0)
        self.beta = as_float(beta, "beta", minimum=0.0)
        self.seed = as_seed(seed)
        self.decoder_hidden = (tuple(reversed(self.hidden)) if decoder_hidden is None
                               else _as_widths(decoder_hidden, "decoder_hidden"))
        self._levels = _cov.as_levels(categorical_covariates, "categorical_covariates")
        self.categorical_covariates = tuple(int(n) for n in self._levels)
        self.deeply_inject_covariates = _cov.as_flag(deeply_inject_covariates,
                                                     "deeply_inject_covariates")
        self.encode_covariates = _cov.as_flag(encode_covariates, "encode_covariates")
        self._dispersion = _disp.choose(dispersion, dispersion_covariate, n_labels, self._levels)
        self.dispersion = self._dispersion.mode
        self._core = _core.VAECore(self.n_features, list(self.hidden),
                                   list(self.decoder_hidden), self.latent_dim,
                                   self._lik.code, self.beta, self.n_conditions,
                                   self.variance, self._levels, self.deeply_inject_covariates,
                                   self.encode_covariates, dispersion=self.dispersion,
                                   dispersion_covariate=self._dispersion.core_column,
                                   dispersion_levels=self._dispersion.n_labels)
        bn = _hidden_options.configure(self, dropout_rate, dropout_on, use_batch_norm, use_layer_norm)
        self._layout = Layout(self.n_features, self.hidden, self.latent_dim,
                              self.decoder_hidden, self.n_conditions, self.likelihood,
                              self.variance, bn, self.categorical_covariates,
                              self.deeply_inject_covariates, self.encode_covariates,
                              self.dispersion, self._dispersion.rows)
        core_offsets = [self._core.layer_info(i) for i in range(self._core.n_layers)]
        core_tables = [self._core.cov_table(i) for i in range(self._core.n_layers)]
        _, _, theta_off, theta_rows = self._core.dispersion_info()
        if (core_offsets != self._layout.offsets()
                or core_tables != self._layout.table_offsets()
                or (theta_rows and (theta_off, theta_rows) != self._layout.theta_table)
                or self._core.num_params != self._layout.n_params):
            raise AssertionError("the C core and vaefast/_layout.py disagree on the "
                                 "parameter layout")
        self._train_lock = threading.Lock()
        self._tls = threading.local()  # per-thread inference workspace
        self.step_ = 0       # optimizer steps taken (eps depends on (seed, step))
        self.epoch_ = 0      # epochs completed (shuffling depends on (seed, epoch))
        self.optimizer_: Optional[str] = None  # optimizer whose state the moment buffers hold
        self._core.set_buffer(_core.PARAMS, self._layout.init(self.seed))

    @property
    def step_(self) -> int:
        """Optimizer steps taken; the noise of a step depends on (seed, step).
        Kept by the core, which advances it with the steps themselves."""
        return int(self._core.step)

    @step_.setter
    def step_(self, value: int) -> None:
        self._core.step = value

    # ------------------------------------------------------------ weights
    def _named_from_flat(self, flat: F32) -> dict[str, F32]:
        return self._layout.named_from_flat(flat)

    def get_weights(self) -> dict[str, F32]:
        """All parameters as a dict of float32 copies.

        Keys: ``encoder.{i}.weight/bias``, ``mu.weight/bias``,
        ``logvar.weight/bias``, ``decoder.{i}.weight/bias``,
        ``output.weight/bias``; weights are shaped (in_features,
        out_features), biases (out_features,). With ``variance="sample"``
        also ``output_logvar.weight/bias``; with ``variance="feature"``
        ``likelihood.logvar`` (n_features,); for the negative binomial
        ``likelihood.log_theta`` (n_features,), or with ``dispersion=``
        "gene-batch"/"gene-label" ``likelihood.log_theta_table`` (rows,
        n_features) and with "gene-cell" ``output_log_theta.weight/bias``
        instead. A conditional model's
        ``encoder.0.weight`` (and ``decoder.0.weight``) has C more rows, the
        last ones, for the conditions.
        """
        return self._named_from_flat(self._core.get_buffer(_core.PARAMS))

    def set_weights(self, weights: "Mapping[str, ArrayLike]") -> None:
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
        flat = self._layout.flat_from_named(weights, as_weight)
        with self._exclusive("set_weights"):
            self._core.set_buffer(_core.PARAMS, flat)

    def num_params(self) -> int:
        """Number of trainable parameters."""
        return int(self._core.num_params)

    # ------------------------------------------------------------ locking
    def _exclusive(self, what: str) -> ContextManager[None]:
        model = self

        class _Guard:
            def __enter__(self) -> None:
                if not model._train_lock.acquire(blocking=False):
                    raise RuntimeError(f"{what}: this VAE is being trained by another "
                                       "thread (concurrent fit is not allowed)")

            def __exit__(self, *exc: object) -> "Literal[False]":
                model._train_lock.release()
                return False

        return _Guard()

    # ------------------------------------------------------------ checks
    def _check_X(self, X: object, name: str = "X", targets: bool = False,
                 finite: bool = True) -> F32:
        # Checked as targets, a float32 X skips the finite scan: the targets'
        # range scan (min and max, which carry any NaN or ±inf) stands in for
        # it, one pass over X fewer (a float64 X keeps it: its message tells
        # a NaN from a value too large for float32).
        range_scan = targets and finite and isinstance(X, np.ndarray) and X.dtype == np.float32
        X = as_float32_array(X, name, ndim=2, finite=finite and not range_scan)
        if X.shape[1] != self.n_features:
            raise ValueError(f"{name} must have {self.n_features} columns (n_features), "
                             f"got {X.shape[1]}")
        return self._lik.check_targets(X, name) if targets else X

    def _check_c(self, c: object, n: int, name: str = "c", codes: object = None,
                 codes_name: str = "codes") -> _cov.Side:
        """The side inputs of n rows as the core takes them: the conditions
        (required (n, n_conditions) for a conditional model, refused for an
        unconditional one) and the codes (required (n, K) exactly when the
        model has K categorical covariates); with codes, the pair (c, codes)."""
        k = _disp.model_codes(self._dispersion, codes, n, codes_name)
        if self.n_conditions == 0:
            if c is not None:
                raise ValueError(f"{name} was given but this VAE is unconditional "
                                 "(n_conditions=0)")
            return _cov.side(None, k)
        if c is None:
            raise ValueError(f"{name} is required: this VAE is conditional "
                             f"(n_conditions={self.n_conditions})")
        c = as_float32_array(c, name, ndim=2)
        if c.shape != (n, self.n_conditions):
            raise ValueError(f"{name} must have shape ({n}, {self.n_conditions}) "
                             f"(rows, n_conditions), got {c.shape}")
        return _cov.side(c, k)

    def _check_size_factors(self, size_factors: object, n: int) -> Optional[F32]:
        if size_factors is None:
            return None
        if not self._lik.counts:
            raise ValueError("size_factors is only for the count likelihoods "
                             f"{_likelihoods.COUNT_NAMES}, this VAE's is {self.likelihood!r}")
        return as_size_factors(size_factors, n)

    def _extra_param(self) -> Optional[F32]:
        """The per-feature likelihood parameters (log-variance / log θ), or None."""
        _disp.check_supported(self, "the per-gene θ vector")  # else: _disp.log_theta_rows
        if self._layout.extra is None:
            return None
        _, off, size = self._layout.extra
        return self._core.get_buffer(_core.PARAMS)[off:off + size]

    def _log_theta_rows(self, raw: "np.ndarray[Any, Any]",
                        side: _cov.Side) -> "Optional[np.ndarray[Any, Any]]":
        """log θ (unclamped) for the rows of `raw`, the decoder's output layer,
        whose checked side inputs are `side`: the per-feature vector (D,) for
        dispersion "gene" (None without one), else (n, D): the "gene-cell"
        head's columns, or the table rows of the rows' codes."""
        choice, D = self._dispersion, self.n_features
        if choice.rows == 0:
            return raw[:, -D:] if choice.mode == "gene-cell" else self._extra_param()
        assert isinstance(side, tuple) and choice.column is not None  # a table reads codes
        off, rows = self._layout.theta_table
        table = self._core.get_buffer(_core.PARAMS)[off:off + rows * D].reshape(rows, D)
        return table[side[1][:, choice.column]]

    def _check_Z(self, Z: object, name: str = "Z") -> F32:
        Z = as_float32_array(Z, name, ndim=2)
        if Z.shape[1] != self.latent_dim:
            raise ValueError(f"{name} must have {self.latent_dim} columns (latent_dim), "
                             f"got {Z.shape[1]}")
        return Z

    # ------------------------------------------------------------ inference
    def _scratch(self, kind: str = "infer") -> F32:
        """This thread's workspace for encode/decode of _INFER_CHUNK rows
        (kind "infer") or for elbo (kind "elbo"), reused so repeated calls do
        not page-fault fresh memory; one per thread, so concurrent inference
        is safe."""
        work: Optional[F32] = getattr(self._tls, kind, None)
        if work is None:
            size = (self._core.work_size(_INFER_CHUNK) if kind == "infer"
                    else self._core.elbo_work_size())
            work = np.empty(size, np.float32)
            setattr(self._tls, kind, work)
        return work

    @deferrable
    @_reads_weights
    def encode(self, X: ArrayLike, c: Optional[ArrayLike] = None,
               precision: Optional[str] = None,
               codes: Optional[ArrayLike] = None) -> tuple[F32, F32]:
        """Parameters of q(z|x) (q(z|x, c) for a conditional model).

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        c : array_like, shape (n, n_conditions)
            The conditions; required exactly when n_conditions > 0.
        precision : {"fp32", "bf16"}, optional (default: the model's)
        codes : array_like of int, shape (n, K), for a model with K categorical covariates

        Returns
        -------
        mu, logvar : ndarray, shape (n, latent_dim), float32
            logvar is clamped to [-30, 30], as in training.
        """
        # bf16 on float32 input: the core scans X for NaN/inf as it converts it
        bf16 = _precision.code(self.precision, precision) == _precision.CODES["bf16"]
        X = self._check_X(X, finite=not (bf16 and isinstance(X, np.ndarray)
                                         and X.dtype == np.float32))
        return self._encode_checked(X, self._check_c(c, X.shape[0], codes=codes), precision)

    @_reads_weights
    def _encode_checked(self, X: F32, c: _cov.Side,
                        precision: Optional[str]) -> tuple[F32, F32]:
        """encode on validated X and side inputs, a chunk of rows per core call."""
        p = _precision.code(self.precision, precision)
        if X.shape[0] <= _INFER_CHUNK:  # one core call, nothing else allocated
            return self._core.encode(X, self._scratch(), c, precision=p)
        mus, lvs = [], []
        for s in range(0, X.shape[0], _INFER_CHUNK):
            mu, lv = self._core.encode(X[s:s + _INFER_CHUNK], self._scratch(),
                                       _cov.take(c, slice(s, s + _INFER_CHUNK)), precision=p)
            mus.append(mu)
            lvs.append(lv)
        if len(mus) == 1:
            return mus[0], lvs[0]
        return np.concatenate(mus), np.concatenate(lvs)

    @deferrable
    def transform(self, X: ArrayLike, c: Optional[ArrayLike] = None,
                  codes: Optional[ArrayLike] = None) -> F32:
        """The posterior mean mu (the usual embedding).

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        c : array_like, shape (n, n_conditions), for a conditional model
        codes : array_like of int, shape (n, K), for a model with K categorical covariates

        Returns
        -------
        mu : ndarray, shape (n, latent_dim), float32
        """
        return self.encode(X, c, codes=codes)[0]

    @_reads_weights
    def _decode_raw(self, Z: F32, mean: bool, c: _cov.Side = None,
                    size_factors: Optional[F32] = None, precision: Optional[str] = None) -> F32:
        """Decoder on validated Z (and side inputs c, size factors): the
        output layer (mean=False) or the mean of p(x|z)."""
        p = _precision.code(self.precision, precision)
        if Z.shape[0] <= _INFER_CHUNK:  # one core call, nothing else allocated
            return self._core.decode(Z, mean, self._scratch(), c, size_factors, p)

        def part(a: _cov.Side, s: int) -> Any:
            return _cov.take(a, slice(s, s + _INFER_CHUNK))

        return np.concatenate([self._core.decode(Z[s:s + _INFER_CHUNK], mean, self._scratch(),
                                                 part(c, s), part(size_factors, s), p)
                               for s in range(0, Z.shape[0], _INFER_CHUNK)])

    @deferrable
    def decode(self, Z: ArrayLike, c: Optional[ArrayLike] = None,
               size_factors: Optional[ArrayLike] = None, precision: Optional[str] = None,
               codes: Optional[ArrayLike] = None) -> F32:
        """Mean of p(x|z): probabilities (Bernoulli), the Gaussian mean, or
        the count mean size_factor·exp(output) (Poisson, negative binomial).

        Parameters
        ----------
        Z : array_like, shape (n, latent_dim)
        c : array_like, shape (n, n_conditions), for a conditional model
        size_factors : array_like, shape (n,), optional
            Count likelihoods only (default 1).
        precision : {"fp32", "bf16"}, optional (default: the model's)
        codes : array_like of int, shape (n, K), for a model with K categorical covariates

        Returns
        -------
        ndarray, shape (n, n_features), float32
        """
        Z = self._check_Z(Z)
        return self._decode_raw(Z, True, self._check_c(c, Z.shape[0], codes=codes),
                                self._check_size_factors(size_factors, Z.shape[0]), precision)

    @deferrable
    @_reads_weights
    def reconstruct(self, X: ArrayLike, c: Optional[ArrayLike] = None,
                    size_factors: Optional[ArrayLike] = None,
                    codes: Optional[ArrayLike] = None) -> F32:
        """The mean reconstruction ``decode(transform(X, c), c)`` (no sampling;
        the same codes for both).

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        c : array_like, shape (n, n_conditions), for a conditional model
        size_factors : array_like, shape (n,), optional (count likelihoods)
        codes : array_like of int, shape (n, K), for a model with K categorical covariates

        Returns
        -------
        ndarray, shape (n, n_features), float32
        """
        X = self._check_X(X)
        side = self._check_c(c, X.shape[0], codes=codes)
        s = self._check_size_factors(size_factors, X.shape[0])
        if s is None and self._lik.observed_library:  # scVI: the observed library
            s = X.sum(axis=1, dtype=np.float64).astype(np.float32)
        return self._decode_raw(self._encode_checked(X, side, None)[0], True, side, s)

    def sample(self, n: int, seed: Optional[int] = None, c: Optional[ArrayLike] = None,
               precision: Optional[str] = None, codes: Optional[ArrayLike] = None) -> F32:
        """Draw samples from the model: z ~ N(0, I), then decode(z, c).

        Parameters
        ----------
        n : int, >= 1
            Number of samples.
        seed : int, optional
            Seed of the NumPy generator drawing z (fresh entropy if None).
        c : array_like, shape (n, n_conditions), for a conditional model
            The condition of each sample.
        precision : {"fp32", "bf16"}, optional (default: the model's)
        codes : array_like of int, shape (n, K), for a model with K categorical covariates
            The covariates of each sample.

        Returns
        -------
        ndarray, shape (n, n_features), float32
            Means of p(x|z): probabilities for the Bernoulli likelihood,
            rates for the count likelihoods (size factor 1).
        """
        n = as_int(n, "n", minimum=1)
        side = self._check_c(c, n, codes=codes)
        rng = np.random.default_rng(None if seed is None else as_seed(seed))
        z = rng.standard_normal((n, self.latent_dim)).astype(np.float32)
        return self._decode_raw(z, True, side, None, precision)

    # ------------------------------------------------------------ training
    if TYPE_CHECKING:
        # fit's signature for type checkers; at run time it is the table of
        # vaefast/_fit_options.py's (tests/test_typing.py: the two agree).
        def fit(self, X: object, epochs: int = 10, batch_size: int = 128,
                learning_rate: float = 1e-3, optimizer: Literal["adam", "sgd"] = "adam",
                shuffle: bool = True, validation_data: object = None,
                early_stopping_patience: Optional[int] = None, kl_warmup_epochs: int = 0,
                callbacks: "FitCallback | Sequence[FitCallback]" = (),
                progress: Optional[bool] = None, c: Optional[ArrayLike] = None,
                size_factors: Optional[ArrayLike] = None, comm: Any = None,
                checkpoint: Optional[StrPath] = None, buffer_rows: Optional[int] = None,
                sparse_first_layer: bool = True, layer: Optional[str] = None,
                precision: Optional[str] = None,
                codes: Optional[ArrayLike] = None) -> "History": ...
    else:
        @_fit_options.declare
        def fit(self, X, *args, **kwargs):
            from .training import fit

            return fit(self, X, *args, **kwargs)

    # ------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as a JSON-serialisable dict."""
        return {"n_features": self.n_features, "hidden": list(self.hidden),
                "latent_dim": self.latent_dim, "likelihood": self.likelihood, "beta": self.beta,
                "seed": self.seed, "decoder_hidden": list(self.decoder_hidden),
                "n_conditions": self.n_conditions, "variance": self.variance,
                **({} if self.precision == "fp32" else {"precision": self.precision}),
                **self._covariate_config(), **_disp.config_entries(self._dispersion),
                **_hidden_options.config_entries(self)}

    def _covariate_config(self) -> dict[str, Any]:
        """get_config's covariate entries: none for a model without (older
        files, which lack them, load as such a model)."""
        if not self.categorical_covariates:
            return {}
        return {"categorical_covariates": list(self.categorical_covariates),
                "deeply_inject_covariates": self.deeply_inject_covariates,
                "encode_covariates": self.encode_covariates}

    def __repr__(self) -> str:
        return (f"VAE(n_features={self.n_features}, hidden={self.hidden}, "
                f"latent_dim={self.latent_dim}, likelihood={self.likelihood!r}, "
                f"beta={self.beta}, seed={self.seed}, decoder_hidden={self.decoder_hidden}"
                + (f", n_conditions={self.n_conditions}" if self.n_conditions else "")
                + (f", variance={self.variance!r}" if self.variance != "unit" else "")
                + (f", precision={self.precision!r}" if self.precision != "fp32" else "")
                + "".join(f", {k}={v!r}" for k, v in {**self._covariate_config(),
                          **_disp.config_entries(self._dispersion)}.items()) + ")")
