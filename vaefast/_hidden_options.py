"""Options of the VAE's hidden layers beyond their widths: dropout, batch
normalisation and layer normalisation (their validation, the C model's
switches, the configuration and saved-state entries).

scvi-tools' FCLayers orders a hidden layer Linear → BatchNorm1d(momentum
0.01, eps 0.001) → LayerNorm(no affine) → ReLU → Dropout, and its SCVI
encoder uses dropout 0.1 while its decoder uses none
(scvi/nn/_base_components.py, scvi/module/_vae.py, scvi-tools 1.4);
``VAE.from_anndata`` defaults to those (dropout on the encoder, batch norm on
both sides, no layer norm). The kernels: csrc/vae_dropout.c, csrc/vae_norm.c.
"""

from typing import TYPE_CHECKING, Any, Mapping, Optional

import numpy as np

from ._internals import internals
from ._typing import F32
from ._validation import as_float

if TYPE_CHECKING:
    from .model import VAE

__all__ = ["HiddenOptions", "SIDES", "NORM_SIDES", "SCVI_DEFAULTS", "configure",
           "config_entries", "state_entries", "restore_state", "running_statistics", "BN_EPS",
           "check_fit"]

SIDES = ("encoder", "decoder", "both")
NORM_SIDES = ("none", *SIDES)
_BITS = {"none": 0, "encoder": 1, "decoder": 2, "both": 3}
SCVI_DEFAULTS = {"dropout_rate": 0.1, "dropout_on": "encoder", "use_batch_norm": "both"}
_STATE_KEY = "batch_norm_running_stats"
BN_EPS = 0.001  # csrc/vae_norm.h VAE_BN_EPS, for inference-only exporters


class HiddenOptions:
    """The options as attributes of the VAE (a base class of it); set by
    configure, from the constructor's arguments."""

    dropout_rate: float  # in [0, 1)
    dropout_on: str      # one of SIDES
    use_batch_norm: str  # one of NORM_SIDES
    use_layer_norm: str  # one of NORM_SIDES


def _choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def configure(model: "VAE", dropout_rate: object, dropout_on: object, use_batch_norm: object,
              use_layer_norm: object) -> list[tuple[str, int]]:
    """Validate the options (ValueError/TypeError naming the argument), set
    them on `model` and on its C model, and return the batch-norm layers
    (name, width) in forward order for the parameter layout."""
    rate = as_float(dropout_rate, "dropout_rate", minimum=0.0)
    if rate >= 1.0:
        raise ValueError(f"dropout_rate must be < 1, got {rate}")
    model.dropout_rate, model.dropout_on = rate, _choice(dropout_on, "dropout_on", SIDES)
    model.use_batch_norm = _choice(use_batch_norm, "use_batch_norm", NORM_SIDES)
    model.use_layer_norm = _choice(use_layer_norm, "use_layer_norm", NORM_SIDES)
    bn = _BITS[model.use_batch_norm]
    internals(model).core.set_dropout(rate if model.dropout_on != "decoder" else 0.0,
                            rate if model.dropout_on != "encoder" else 0.0)
    internals(model).core.set_norm(bn, _BITS[model.use_layer_norm])
    return _batch_norm_layers(model)


def _batch_norm_layers(model: "VAE") -> list[tuple[str, int]]:
    """(get_weights() prefix, width) of each batch-normalised layer, in forward
    order (the order of their parameters and running statistics)."""
    bn = _BITS[model.use_batch_norm]
    sides = (("encoder", model.hidden, 1), ("decoder", model.decoder_hidden, 2))
    return [(f"{side}.{i}", w) for side, widths, bit in sides if bn & bit
            for i, w in enumerate(widths)]


def running_statistics(model: "VAE") -> list[tuple[str, F32, F32]]:
    """(prefix, running mean, running variance) of each batch-norm layer."""
    stats, out, off = internals(model).core.get_norm_stats(), [], 0
    for prefix, width in _batch_norm_layers(model):
        out.append((prefix, stats[off:off + width], stats[off + width:off + 2 * width]))
        off += 2 * width
    return out


def config_entries(model: "VAE") -> dict[str, Any]:
    """The get_config entries of the options that are on (none of the
    defaults, so a plain model keeps the configuration of before they
    existed, and exporters can tell which ones they would have to translate)."""
    out: dict[str, Any] = {}
    if model.dropout_rate > 0:
        out.update(dropout_rate=model.dropout_rate, dropout_on=model.dropout_on)
    for key in ("use_batch_norm", "use_layer_norm"):
        if getattr(model, key) != "none":
            out[key] = getattr(model, key)
    return out


def check_fit(model: "VAE", n_rows: Optional[int], batch_size: int, comm: object) -> None:
    """Batch statistics need every training batch to have 2 rows or more, and
    the whole batch in one process (ValueError naming the argument; a stream
    of unknown length is checked by the core, batch by batch)."""
    if getattr(model, "use_batch_norm", "none") == "none":
        return
    if comm is not None:
        raise ValueError("comm: use_batch_norm is not supported with comm= (a shard's batch "
                         "statistics are not the batch's); train in one process")
    if n_rows is not None and (n_rows % batch_size == 1 or batch_size == 1):
        raise ValueError(f"batch_size: with use_batch_norm, no batch may have 1 row; "
                         f"{n_rows} rows in batches of {batch_size} leave one: change "
                         "batch_size")


def state_entries(model: "VAE") -> dict[str, Any]:
    """The saved state's entry for the running statistics (exact: float32
    values survive JSON's float64 round trip), or nothing without them."""
    stats = internals(model).core.get_norm_stats()
    return {_STATE_KEY: stats.astype(np.float64).tolist()} if stats.size else {}


def restore_state(model: "VAE", state: Mapping[str, Any], path: object) -> None:
    """Put the saved running statistics back (ValueError on a damaged entry)."""
    values: Optional[Any] = state.get(_STATE_KEY)
    want = internals(model).core.get_norm_stats().size
    if values is None and want == 0:
        return
    try:
        stats = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        stats = np.empty(0, np.float32)
    if stats.shape != (want,) or not np.isfinite(stats).all():
        raise ValueError(f"{path!s} is corrupt: {_STATE_KEY} must be {want} finite floats")
    internals(model).core.set_norm_stats(np.ascontiguousarray(stats))
