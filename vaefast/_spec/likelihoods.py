"""The likelihood registry: one `Likelihood` record per p(x|z), stated once.

Every part of vaefast that depends on the likelihood reads its record here
instead of comparing names: the layout (its per-feature parameter), the
argument checks (its valid targets, whether size factors apply), the model
(its C enum code, its log-density for the IWAE bound), the command line and
scikit-learn faces (the names), the exporters (the torch and ONNX hooks).

Adding a likelihood means (docs/kernels.md has the whole checklist): its C
kernels and its row of the C operations table; its NumPy log-density in
densities.py and its twin in the reference; its export hooks in
export_hooks.py (or None: the exporters then refuse the model); one record
below; its tests.

The C enum codes and the clamps (limits.py) are plain numbers;
tests/test_structure.py checks them against the compiled binding, which
this package never imports.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import numpy as np

from .._typing import ArrayLike, F64, Floats
from . import densities, export_hooks
from .limits import LIMITS

VARIANCES = ("unit", "feature", "sample")


@dataclass(frozen=True)
class Likelihood:
    """One p(x|z) and everything vaefast needs to know about it.

    name : the public name (``VAE(likelihood=name)``); title : in prose.
    code, c_enum : its value and name in csrc/vaefast.h's enum.
    output : what the decoder's output layer holds for it.
    targets : (low, high), the closed range of valid targets.
    target_hint : appended to the out-of-range message.
    counts : a count likelihood: size factors scale its mean and the
        encoder reads log(1 + x).
    variances : the ``variance=`` modes it has.
    extra_param : variance -> get_weights() key of its per-feature
        parameter vector (n_features floats after the last layer).
    heads : the output layer's blocks of n_features columns (their
        get_weights() prefixes): one, or [rho | pi] for ZINB (one GEMM).
    observed_library : scVI's mean, library · softmax(output): counts must
        be integers, and the library is the size factor when given, else the
        row's observed total count, so a row of X summing to 0 is refused.
    log_px : NumPy float64 log p(x|z) per row,
        ``log_px(out, X, extra, size_factors, variance)``.
    mean : NumPy mean of p(x|z), ``mean(out, n_features, size_factors)``.
    torch_log_px, torch_mean, onnx_mean : the exporters' hooks
        (export_hooks.py), or None if it cannot be exported.
    """

    name: str
    title: str
    code: int
    c_enum: str
    output: str
    targets: tuple[float, float]
    counts: bool
    log_px: Callable[[Floats, Floats, Optional[Floats], Optional[Floats], str], F64]
    mean: Callable[[Floats, int, Optional[Floats]], Floats]
    variances: tuple[str, ...] = ("unit",)
    extra_param: Mapping[str, str] = field(default_factory=dict)
    target_hint: str = ""
    torch_log_px: Optional[Callable[..., Any]] = None
    torch_mean: Optional[Callable[..., Any]] = None
    onnx_mean: Optional[Callable[..., Any]] = None
    heads: tuple[str, ...] = ("output",)
    observed_library: bool = False

    def extra_param_key(self, variance: str) -> Optional[str]:
        """The key of the per-feature parameter vector, or None."""
        return self.extra_param.get(variance)

    def output_heads(self, variance: str) -> tuple[str, ...]:
        """The output layer's blocks of n_features columns, by public key prefix."""
        return ("output", "output_logvar") if variance == "sample" else self.heads

    def check_targets(self, X: Floats, name: str = "X") -> Floats:
        """Raise ValueError naming `name` if the float32 array X holds values
        outside this likelihood's targets (non-integer counts are accepted:
        lgamma(x + 1) is used). Returns X."""
        if X.size == 0:
            return X
        low, high = self.targets
        lo, hi = X.min(), X.max()
        if not (math.isfinite(lo) and math.isfinite(hi)):  # a NaN or ±inf anywhere
            raise ValueError(f"{name} contains NaN or infinity")
        if math.isfinite(high) and (lo < low or hi > high):
            raise ValueError(f"{name} must lie in [{low:g}, {high:g}] for the "
                             f"{self.title} likelihood, got values in [{lo}, {hi}]"
                             f"{self.target_hint}")
        if math.isfinite(low) and lo < low:
            raise ValueError(f"{name} must be non-negative counts for the {self.name} "
                             f"likelihood, got a minimum of {lo}")
        if self.observed_library:
            _check_scvi_counts(X, name, self.name)
        return X

    def check_row_totals(self, totals: ArrayLike, name: str = "X") -> None:
        """Raise ValueError naming `name` if this likelihood's library size is
        the observed total count and a row's total (in `totals`) is zero."""
        if self.observed_library:
            _check_row_totals(totals, name, self.name)


def _check_scvi_counts(X: Floats, name: str, likelihood: str) -> None:
    """The scVI likelihoods' counts: finite integers up to 2^24 (exact in
    float32; the kernel's lgamma(x + 1) is of an integer), every row with a
    positive total (its observed library size). A 1-D X is a piece of a
    sparse matrix's stored values: its rows are checked by check_row_totals."""
    if not np.isfinite(X).all():
        raise ValueError(f"{name} must be finite counts for the {likelihood} likelihood")
    if X.max() > LIMITS["count_max"] or (X != np.floor(X)).any():
        raise ValueError(f"{name} must hold integer counts in [0, 2^24] for the "
                         f"{likelihood} likelihood")
    if X.ndim == 2:
        _check_row_totals(X.sum(axis=1, dtype=np.float64), name, likelihood)


def _check_row_totals(totals: ArrayLike, name: str, likelihood: str) -> None:
    empty = np.flatnonzero(np.asarray(totals) <= 0)
    if empty.size:
        raise ValueError(
            f"{name} has {empty.size} row(s) of zero total count (first: row {empty[0]}); "
            f"the {likelihood} likelihood's library size is the observed total count "
            f"(scvi-tools' log-library would be -inf): drop empty cells")


BERNOULLI = Likelihood(
    name="bernoulli", title="Bernoulli", code=0, c_enum="VF_LIKELIHOOD_BERNOULLI",
    output="logits",
    targets=(0.0, 1.0), counts=False,
    target_hint=" (scale it, e.g. with MinMaxScaler(clip=True))",
    log_px=densities.bernoulli_log_px, mean=densities.bernoulli_mean,
    torch_log_px=export_hooks.bernoulli_log_px, torch_mean=export_hooks.sigmoid_mean,
    onnx_mean=export_hooks.onnx_sigmoid)
GAUSSIAN = Likelihood(
    name="gaussian", title="Gaussian", code=1, c_enum="VF_LIKELIHOOD_GAUSSIAN",
    output="mean (| log-variance)",
    targets=(-math.inf, math.inf), counts=False, variances=VARIANCES,
    extra_param={"feature": "likelihood.logvar"},
    log_px=densities.gaussian_log_px, mean=densities.gaussian_mean,
    torch_log_px=export_hooks.gaussian_log_px, torch_mean=export_hooks.identity_mean,
    onnx_mean=export_hooks.onnx_identity)


def _count_likelihood(**fields: Any) -> Likelihood:
    """A count likelihood: targets are counts >= 0 (size factors apply, the
    encoder reads log(1 + x)) and, unless `fields` say otherwise, its mean is
    size factor · exp(output)."""
    defaults: dict[str, Any] = dict(
        targets=(0.0, math.inf), counts=True, mean=densities.count_mean,
        torch_mean=export_hooks.count_mean, onnx_mean=export_hooks.onnx_count_mean)
    return Likelihood(**{**defaults, **fields})


POISSON = _count_likelihood(
    name="poisson", title="Poisson", code=2, c_enum="VF_LIKELIHOOD_POISSON",
    output="log-rate", log_px=densities.poisson_log_px,
    torch_log_px=export_hooks.poisson_log_px)
NEGATIVE_BINOMIAL = _count_likelihood(
    name="negative_binomial", title="negative binomial", code=3,
    c_enum="VF_LIKELIHOOD_NEGBIN", output="log-mean",
    extra_param={"unit": "likelihood.log_theta"},
    log_px=densities.negative_binomial_log_px,
    torch_log_px=export_hooks.negative_binomial_log_px)

# scVI's parameterisation (scvi-tools' DecoderSCVI): mean = library ·
# softmax(output), library = the row's total count or its size factor.
_SCVI = dict(observed_library=True, mean=densities.softmax_mean,
             torch_mean=export_hooks.softmax_mean, onnx_mean=export_hooks.onnx_softmax_mean)
ZINB = _count_likelihood(
    name="zinb", title="zero-inflated negative binomial (scVI)", code=4,
    c_enum="VF_LIKELIHOOD_ZINB", output="rho | zero-inflation logits",
    heads=("output", "output_pi"), extra_param={"unit": "likelihood.log_theta"},
    log_px=densities.zinb_log_px, torch_log_px=export_hooks.zinb_log_px, **_SCVI)
SCVI_NB = _count_likelihood(
    name="scvi_nb", title="negative binomial (scVI)", code=5,
    c_enum="VF_LIKELIHOOD_SCVI_NB", output="rho", extra_param={"unit": "likelihood.log_theta"},
    log_px=densities.scvi_nb_log_px, torch_log_px=export_hooks.scvi_nb_log_px,
    **_SCVI)
SCVI_POISSON = _count_likelihood(
    name="scvi_poisson", title="Poisson (scVI)", code=6,
    c_enum="VF_LIKELIHOOD_SCVI_POISSON", output="rho",
    log_px=densities.scvi_poisson_log_px,
    torch_log_px=export_hooks.scvi_poisson_log_px, **_SCVI)

REGISTRY = {lik.name: lik for lik in (BERNOULLI, GAUSSIAN, POISSON, NEGATIVE_BINOMIAL,
                                      ZINB, SCVI_NB, SCVI_POISSON)}
NAMES = tuple(REGISTRY)
COUNT_NAMES = tuple(name for name, lik in REGISTRY.items() if lik.counts)
DEFAULT = BERNOULLI.name


def get(name: str, argument: str = "likelihood") -> Likelihood:
    """The record of likelihood `name`; ValueError naming `argument` if unknown."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"{argument} must be one of {NAMES}, got {name!r}") from None
