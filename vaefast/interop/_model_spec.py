"""The part of a VAE's configuration the exporters understand.

Exporters translate the plain architecture (ReLU MLPs, a mu/logvar head, a
likelihood from the table in _likelihoods). A configuration option they do
not know (say, a conditioning input added later) must not be dropped
silently: the exported graph would compute something else. Such a model is
refused with NotImplementedError naming the option.
"""

from ._likelihoods import likelihood_export

# get_config() keys the exporters translate.
KNOWN_CONFIG = frozenset({"n_features", "hidden", "latent_dim", "likelihood", "beta",
                          "seed", "decoder_hidden"})


def exportable_config(model):
    """The model's config after checking every option is one the exporters
    translate (an unknown option counts only when set: not None/0/False/empty)."""
    from ..model import VAE

    if not isinstance(model, VAE):
        raise TypeError(f"model must be a vaefast.VAE, got {type(model).__name__}")
    config = model.get_config()
    for key, value in config.items():
        if key not in KNOWN_CONFIG and value not in (None, 0, False, (), [], {}):
            raise NotImplementedError(
                f"exporting a model with {key}={value!r} is not implemented")
    likelihood_export(config["likelihood"])  # NotImplementedError if unknown
    return config


def layer_names(n_encoder_hidden, n_decoder_hidden):
    """The get_weights() layer prefixes in forward order."""
    return ([f"encoder.{i}" for i in range(n_encoder_hidden)] + ["mu", "logvar"]
            + [f"decoder.{i}" for i in range(n_decoder_hidden)] + ["output"])
