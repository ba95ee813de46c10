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
from typing import Callable, Mapping, Optional

from . import densities, export_hooks
from .limits import LIMITS  # noqa: F401  (the clamps, with the records)

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
    targets: tuple
    counts: bool
    log_px: Callable
    mean: Callable
    variances: tuple = ("unit",)
    extra_param: Mapping = field(default_factory=dict)
    target_hint: str = ""
    torch_log_px: Optional[Callable] = None
    torch_mean: Optional[Callable] = None
    onnx_mean: Optional[Callable] = None

    def extra_param_key(self, variance):
        """The key of the per-feature parameter vector, or None."""
        return self.extra_param.get(variance)

    def check_targets(self, X, name="X"):
        """Raise ValueError naming `name` if the float32 array X holds values
        outside this likelihood's targets (non-integer counts are accepted:
        lgamma(x + 1) is used). Returns X."""
        if X.size == 0:
            return X
        low, high = self.targets
        lo, hi = X.min(), X.max()
        if math.isfinite(high) and (lo < low or hi > high):
            raise ValueError(f"{name} must lie in [{low:g}, {high:g}] for the "
                             f"{self.title} likelihood, got values in [{lo}, {hi}]"
                             f"{self.target_hint}")
        if math.isfinite(low) and lo < low:
            raise ValueError(f"{name} must be non-negative counts for the {self.name} "
                             f"likelihood, got a minimum of {lo}")
        return X


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


def _count_likelihood(**fields):
    """A count likelihood: targets are counts >= 0 (size factors apply, the
    encoder reads log(1 + x)) and, unless `fields` say otherwise, its mean is
    size factor · exp(output)."""
    defaults = dict(targets=(0.0, math.inf), counts=True, mean=densities.count_mean,
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

REGISTRY = {lik.name: lik for lik in (BERNOULLI, GAUSSIAN, POISSON, NEGATIVE_BINOMIAL)}
NAMES = tuple(REGISTRY)
COUNT_NAMES = tuple(name for name, lik in REGISTRY.items() if lik.counts)
DEFAULT = BERNOULLI.name


def get(name, argument="likelihood"):
    """The record of likelihood `name`; ValueError naming `argument` if unknown."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"{argument} must be one of {NAMES}, got {name!r}") from None
