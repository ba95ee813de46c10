"""What the exporters need of a model's ``dispersion=`` (the NB/ZINB θ;
vaefast/_dispersion_options.py, csrc/vae_dispersion.c), read from its
get_config() so that to_torch and ONNX agree on it.

"gene": log θ is the per-gene vector ``likelihood.log_theta``; "gene-batch"
and "gene-label": row i reads row ``codes[i, column]`` of the (rows, D) table
``likelihood.log_theta_table`` (column K, a side column no layer reads, for
the labels of ``n_labels``); "gene-cell": D more columns of the output layer,
``output_log_theta``. Plain Python: imports neither torch nor onnx.
"""

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .._spec import dispersion as _spec

# get_config() keys of the option (absent for "gene": older files lack them)
CONFIG_KEYS = frozenset({"dispersion", "dispersion_covariate", "n_labels"})
TABLE_KEY = "likelihood.log_theta_table"
HEAD = "output_log_theta"


@dataclass(frozen=True)
class DispersionSpec:
    """mode; column: the codes' column indexing the table (None without
    one); rows: the table's rows (0 without one); head: log θ is a head of
    the output layer; code_levels: the levels of every column of the
    model's codes, the layers' K covariates first, then the side label
    column if the labels ride along (`side`)."""

    mode: str
    column: Optional[int]
    rows: int
    head: bool
    code_levels: tuple[int, ...]
    side: bool

    @property
    def table(self) -> bool:
        return self.rows > 0


def dispersion_spec(config: Mapping[str, Any]) -> DispersionSpec:
    """The DispersionSpec of a get_config() dict (a checked model's)."""
    mode = str(config.get("dispersion", _spec.DEFAULT))
    levels = tuple(int(n) for n in config.get("categorical_covariates", ()))
    d = _spec.REGISTRY[mode]
    if d.per in ("batch", "label"):
        n_labels = config.get("n_labels")
        if n_labels is not None:  # the labels ride as a last column of the codes
            return DispersionSpec(mode, len(levels), int(n_labels), False,
                                  levels + (int(n_labels),), True)
        column = int(config.get("dispersion_covariate") or 0)
        return DispersionSpec(mode, column, levels[column], False, levels, False)
    return DispersionSpec(mode, None, 0, d.head, levels, False)
