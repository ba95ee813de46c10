"""The NB/ZINB dispersion modes: what the inverse dispersion θ depends on.

One record per mode (scvi-tools 1.4 ``scvi/module/_vae.py``, ``VAE(dispersion=…)``
has the same four: "gene", "gene-batch", "gene-label", "gene-cell"). log θ
is either a learned table with one row of D genes per value of the row's
code (``per``: "gene" has one row and no code; "batch" indexes it by the
batch code, "label" by the label code: a gather, and its gradient a
scatter-add, csrc/covariates.c), or, for "gene-cell", a further head of the
decoder's output layer (D more columns, no table).

Plain data: nothing here imports the compiled core.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np
from numpy.typing import NDArray

DEFAULT = "gene"


@dataclass(frozen=True)
class Dispersion:
    """name : the public name; per : "gene" (one shared row), "batch" or
    "label" (a row per code), or "cell" (a decoder head); doc : in prose."""

    name: str
    per: str
    doc: str

    @property
    def head(self) -> bool:
        """log θ is D more columns of the decoder's output layer."""
        return self.per == "cell"

    def table_rows(self, n_batch: int, n_labels: int) -> int:
        """Rows of its learned (rows, D) log θ table (0 for a head)."""
        return {"gene": 1, "batch": n_batch, "label": n_labels, "cell": 0}[self.per]


REGISTRY = {d.name: d for d in (
    Dispersion("gene", "gene", "one θ per gene"),
    Dispersion("gene-batch", "batch", "one θ per gene and batch"),
    Dispersion("gene-label", "label", "one θ per gene and label"),
    Dispersion("gene-cell", "cell", "θ per gene and cell, from a decoder head"),
)}


def get(mode: object, n_batch: int = 1, n_labels: int = 0) -> Dispersion:
    """The record of ``mode``; ValueError naming ``dispersion`` for an unknown
    mode, ``n_batch``/``n_labels`` when the mode needs more than there are."""
    if not isinstance(mode, str) or mode not in REGISTRY:
        raise ValueError(f"dispersion must be one of {tuple(REGISTRY)}, got {mode!r}")
    d = REGISTRY[mode]
    if d.per == "batch" and n_batch < 1:
        raise ValueError(f"dispersion={mode!r} needs n_batch >= 1, got {n_batch}")
    if d.per == "label" and n_labels < 1:
        raise ValueError(f"dispersion={mode!r} needs labels: n_labels must be >= 1, "
                         f"got {n_labels}")
    return d


def row_codes(d: Dispersion, n_rows: int, batch: Optional[object], labels: Optional[object],
              n_batch: int, n_labels: int) -> Optional[NDArray[np.int32]]:
    """Each row's index into the log θ table (None for "gene" and
    "gene-cell"): the batch or label codes, checked. ValueError naming
    ``batch`` or ``labels`` when they are missing, misshapen or out of range."""
    if d.per not in ("batch", "label"):
        return None
    name, codes, n = ("batch", batch, n_batch) if d.per == "batch" else \
        ("labels", labels, n_labels)
    if codes is None:
        raise ValueError(f"dispersion={d.name!r} needs {name} (one code per row)")
    arr = np.asarray(codes)
    if arr.shape != (n_rows,):
        raise ValueError(f"{name} must have shape ({n_rows},), got {arr.shape}")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer codes, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        bad = arr[(arr < 0) | (arr >= n)][0]
        raise ValueError(f"{name} must lie in [0, {n}), got {bad}")
    return arr.astype(np.int32)
