"""Options of the VAE's hidden layers beyond their widths: dropout (and its
validation), applied to the C model (csrc/vae_dropout.c).

scvi-tools' FCLayers orders a hidden layer Linear → (norms) → ReLU → Dropout
and its SCVI encoder uses dropout 0.1 while its decoder uses none
(scvi/nn/_base_components.py, scvi-tools 1.4); ``VAE.from_anndata``
defaults to that.
"""

from typing import Any

from ._validation import as_float

__all__ = ["SIDES", "configure", "config_entries"]

SIDES = ("encoder", "decoder", "both")


def configure(core: Any, dropout_rate: object, dropout_on: object) -> tuple[float, str]:
    """Validate (dropout_rate, dropout_on), set them on the C model `core` and
    return them normalised. ValueError/TypeError name the argument."""
    rate = as_float(dropout_rate, "dropout_rate", minimum=0.0)
    if rate >= 1.0:
        raise ValueError(f"dropout_rate must be < 1, got {rate}")
    if not isinstance(dropout_on, str) or dropout_on not in SIDES:
        raise ValueError(f"dropout_on must be one of {SIDES}, got {dropout_on!r}")
    core.set_dropout(rate if dropout_on != "decoder" else 0.0,
                     rate if dropout_on != "encoder" else 0.0)
    return rate, dropout_on


def config_entries(rate: float, on: str) -> dict[str, Any]:
    """The get_config entries: none without dropout, so a model without it
    keeps the configuration (and files) of before dropout existed."""
    return {"dropout_rate": rate, "dropout_on": on} if rate > 0 else {}
