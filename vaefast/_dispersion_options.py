"""The VAE's ``dispersion=`` option: what the NB/ZINB inverse dispersion θ
depends on (scVI's four modes, vaefast/_spec/dispersion.py; the C side is
csrc/vae_dispersion.c, bound as ``VAECore(dispersion=…)``).

Here: the constructor's arguments checked and turned into the core's, the
width of the rows' codes (a label column after the covariates for
"gene-label" with ``n_labels``), and the configuration entries. The core
itself refuses a likelihood without a per-row θ, naming ``dispersion``.
"""

from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from . import _covariate_codes as _cov
from ._spec import dispersion as _spec
from ._validation import as_int

if TYPE_CHECKING:
    from .model import VAE

__all__ = ["Choice", "choose", "model_codes", "config_entries", "check_supported"]


class Choice:
    """A checked dispersion choice.

    mode : the mode's name; column : the codes' column indexing the log θ
    table (None without a table); n_labels : the label levels of a side
    column (None unless the label is one); rows : the table's rows (0
    without a table); core_column : VAECore's dispersion_covariate;
    code_levels : the levels of every column a row's codes carry.
    """

    def __init__(self, mode: str, column: Optional[int], n_labels: Optional[int],
                 levels: "_cov.I64") -> None:
        self.mode, self.column, self.n_labels = mode, column, n_labels
        self.code_levels = levels if n_labels is None else \
            np.append(levels, n_labels).astype(np.int64)
        self.rows = 0 if column is None else int(self.code_levels[column])
        # VAECore's dispersion_covariate: none for the side column (its levels say it)
        self.core_column = column if n_labels is None else None


def choose(dispersion: object, dispersion_covariate: object, n_labels: object,
           levels: "_cov.I64") -> Choice:
    """The constructor's ``dispersion``, ``dispersion_covariate`` and
    ``n_labels`` checked against the model's covariate ``levels``.

    "gene-batch" reads θ's row from a covariate's codes (the batch, column
    0, unless ``dispersion_covariate`` says otherwise); "gene-label" from a
    covariate (``dispersion_covariate``) or from a further last column of
    the codes with ``n_labels`` values, which no layer sees (scVI's labels).
    ValueError naming the argument otherwise.
    """
    d = _spec.REGISTRY.get(dispersion) if isinstance(dispersion, str) else None
    if d is None:
        raise ValueError(f"dispersion must be one of {tuple(_spec.REGISTRY)}, "
                         f"got {dispersion!r}")
    table = d.per in ("batch", "label")
    for name, value in (("dispersion_covariate", dispersion_covariate), ("n_labels", n_labels)):
        if value is not None and not table:
            raise ValueError(f"{name} is only for dispersion='gene-batch' or 'gene-label', "
                             f"not dispersion={d.name!r}")
    if n_labels is not None and d.per != "label":
        raise ValueError("n_labels is only for dispersion='gene-label'")
    if not table:
        return Choice(d.name, None, None, levels)
    K = int(levels.shape[0])
    if n_labels is not None:
        if dispersion_covariate is not None:
            raise ValueError("give dispersion_covariate (a covariate is the label) or "
                             "n_labels (a label column after the covariates), not both")
        return Choice(d.name, K, as_int(n_labels, "n_labels", minimum=1), levels)
    if dispersion_covariate is None and d.per == "label":
        raise ValueError("dispersion='gene-label' needs n_labels (the labels as a last "
                         "column of codes=) or dispersion_covariate (a covariate's column)")
    if K == 0:
        raise ValueError(f"dispersion={d.name!r} needs categorical_covariates (θ's row "
                         "is a covariate's code; the batch is column 0)")
    column = 0 if dispersion_covariate is None else as_int(
        dispersion_covariate, "dispersion_covariate", minimum=0)
    if column >= K:
        raise ValueError(f"dispersion_covariate must be in [0, {K}) (a categorical "
                         f"covariate's column), got {column}")
    return Choice(d.name, column, None, levels)


def model_codes(choice: Choice, codes: object, rows: int, name: str) -> Optional["_cov.I32"]:
    """A call's codes of `rows` rows: (rows, K) for K covariates, (rows, K + 1)
    when the labels ride along as the last column (checked in range)."""
    if choice.n_labels is None:
        return _cov.model_codes(codes, choice.code_levels, rows, name)
    if codes is None:
        K = len(choice.code_levels) - 1
        raise ValueError(f"{name} is required: dispersion='gene-label' reads each row's "
                         f"label from column {K} of {name} (shape ({rows}, {K + 1}))")
    return _cov.as_codes(codes, choice.code_levels, rows, name)


def config_entries(choice: Choice) -> dict[str, Any]:
    """get_config's entries: none for "gene" (older files lack them)."""
    if choice.mode == _spec.DEFAULT:
        return {}
    out: dict[str, Any] = {"dispersion": choice.mode}
    if choice.n_labels is not None:
        out["n_labels"] = choice.n_labels
    elif choice.column is not None:
        out["dispersion_covariate"] = choice.column
    return out


def check_supported(model: "VAE", what: str) -> None:
    """NotImplementedError for `what` (a reader of the per-gene θ vector)
    on a model whose θ is a table or a head."""
    if model.dispersion != _spec.DEFAULT:
        raise NotImplementedError(f"{what} is not implemented for dispersion="
                                  f"{model.dispersion!r} (only 'gene')")

