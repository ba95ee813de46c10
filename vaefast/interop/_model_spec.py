"""The part of a VAE's configuration the exporters understand.

Exporters translate the model family of vaefast/_layout.py: ReLU MLPs, a
mu/logvar head, a likelihood from the table in _likelihoods, the Gaussian's
variance ("unit", "feature": one learned log-variance per feature, "sample":
a second half of the output layer) and conditions c (n_conditions columns
appended to the encoder's input [x | c] and the decoder's input [z | c]). A
configuration option they do not know (added to vaefast later) must not be
dropped silently: the exported graph would compute something else. Such a
model is refused with NotImplementedError naming the option.
"""

from typing import Any, Mapping, Optional

import numpy as np
from numpy.typing import NDArray

from .._spec import likelihoods
from ._dispersion_spec import CONFIG_KEYS as DISPERSION_KEYS
from ._likelihoods import likelihood_export

# get_config() keys the exporters translate (dropout is training-only: the
# exported inference is exact without it).
KNOWN_CONFIG = frozenset({"n_features", "hidden", "latent_dim", "likelihood", "beta",
                          "seed", "decoder_hidden", "n_conditions", "variance",
                          "dropout_rate", "dropout_on",
                          "precision"})  # precision: how it runs, not what it is


def exportable_config(model: object, also: "frozenset[str]" = frozenset()) -> dict[str, Any]:
    """The model's config after checking every option is one the exporters
    translate (an unknown option counts only when set: not None/0/False/empty).
    The config gains the defaults of options a model may lack (n_conditions 0,
    variance "unit"). `also`: the further options this exporter translates
    (ONNX: use_batch_norm, through folded_weights(); to_torch: the norms)."""
    from ..model import VAE

    if not isinstance(model, VAE):
        raise TypeError(f"model must be a vaefast.VAE, got {type(model).__name__}")
    config = {"n_conditions": 0, "variance": "unit", **model.get_config()}
    for key, value in config.items():
        known = key in KNOWN_CONFIG or key in also
        if not known and value not in (None, 0, False, (), [], {}):
            raise NotImplementedError(
                f"exporting a model with {key}={value!r} is not implemented")
    likelihood_export(config["likelihood"])  # NotImplementedError if unknown
    return config


ONNX_ALSO = frozenset({"use_batch_norm", "categorical_covariates",
                       "deeply_inject_covariates", "encode_covariates"}) | DISPERSION_KEYS
TORCH_ALSO = frozenset({"use_batch_norm", "use_layer_norm", "categorical_covariates",
                        "deeply_inject_covariates", "encode_covariates"}) | DISPERSION_KEYS


def folded_weights(model: Any) -> dict[str, NDArray[np.float32]]:
    """get_weights() with each batch-normalised layer's inference affine
    (running statistics) folded into its Linear: W·s and (b − mean)·s + beta
    per column, s = gamma / sqrt(running var + eps), in float64, and the
    batch_norm keys dropped; the plain weights without batch norm."""
    from .. import _hidden_options

    weights: dict[str, NDArray[np.float32]] = model.get_weights()
    for prefix, mean, var in _hidden_options.running_statistics(model):
        gamma = weights.pop(f"{prefix}.batch_norm.weight").astype(np.float64)
        beta = weights.pop(f"{prefix}.batch_norm.bias").astype(np.float64)
        s = gamma / np.sqrt(var.astype(np.float64) + _hidden_options.BN_EPS)
        W, b = weights[f"{prefix}.weight"], weights[f"{prefix}.bias"]
        weights[f"{prefix}.weight"] = (W * s).astype(np.float32)
        weights[f"{prefix}.bias"] = ((b - mean) * s + beta).astype(np.float32)
        if f"{prefix}.covariates" in weights:  # its rows join the pre-activation: scaled too
            weights[f"{prefix}.covariates"] = (weights[f"{prefix}.covariates"] * s).astype(
                np.float32)
    return weights


def layer_names(n_encoder_hidden: int, n_decoder_hidden: int) -> list[str]:
    """The get_weights() layer prefixes in forward order (the output layer's
    log-variance half, "output_logvar", with variance="sample", is not one)."""
    return ([f"encoder.{i}" for i in range(n_encoder_hidden)] + ["mu", "logvar"]
            + [f"decoder.{i}" for i in range(n_decoder_hidden)] + ["output"])


def extra_param_name(config: Mapping[str, Any]) -> Optional[str]:
    """The get_weights() key of the per-feature likelihood parameters
    ("likelihood.logvar", "likelihood.log_theta"), or None (also for a
    dispersion mode other than "gene": its log θ is a table or a head)."""
    if config.get("dispersion", "gene") != "gene":
        return None
    return likelihoods.get(config["likelihood"]).extra_param_key(config["variance"])
