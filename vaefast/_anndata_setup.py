"""How a model built by ``VAE.from_anndata`` reads the covariates of cells
from an AnnData's ``obs``: the one place that builds ``c`` and ``codes``
from obs columns.

The setup is a plain JSON-ready dict stored on the model (and in its saved
file's state, vaefast/io/serialize.py)::

    {"layer": str or None,
     "batch_key": str or None,           # also the first "categorical" entry
     "categorical": [[key, [category, ...]], ...],
     "continuous": [key, ...],
     "codes": True,                      # absent in the older one-hot form
     "labels": [key, [category, ...]]}   # only with labels_key (dispersion="gene-label")

With "codes" (what from_anndata builds now, as scVI does) the categorical
keys are the model's categorical covariates: ``codes`` holds one column per
key, a category's index in the stored list, and c only the continuous keys
as floats; with "labels" the codes have one more, last, column: the cell's
label (θ's row, vaefast/_dispersion_options.py). Without it (models saved before; still loaded and run) c is, in
that order, the one-hot columns of each categorical key and the continuous
keys. Cells are mapped by category *value*, so an AnnData whose categories
are listed in another order gives the same codes and c. pandas (anndata's own dependency) is
imported only when conditions are built from an AnnData, never by
``import vaefast``.
"""

from typing import Any, Optional, Sequence, Union

import numpy as np
from numpy.typing import NDArray

from ._typing import F32, StrPath

I32 = NDArray[np.int32]

# The setup: {"layer", "batch_key", "categorical": [(key, categories)], "continuous": [key]}
Setup = dict[str, Any]

__all__ = ["make_setup", "covariates", "conditions", "n_conditions", "levels", "with_batch",
           "fill", "fill_codes", "check_stored"]


def _column(adata: Any, key: str, role: str) -> Any:
    if not isinstance(key, str):
        raise TypeError(f"{role} must name obs columns (str), got {key!r}")
    if key not in adata.obs.columns:
        raise KeyError(f"{role}={key!r} is not a column of adata.obs (its columns: "
                       f"{list(adata.obs.columns)})")
    col = adata.obs[key]
    if col.isna().any():
        row = int(np.flatnonzero(col.isna().to_numpy())[0])
        raise ValueError(f"obs column {key!r} ({role}) has a missing (NaN) value in "
                         f"cell {row} ({adata.obs_names[row]!r})")
    return col


def _python(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _categories(col: Any) -> list[Any]:
    """The categories of an obs column: its categorical dtype's list, or its
    sorted distinct values, as JSON-ready Python scalars."""
    if str(col.dtype) == "category":
        values = list(col.cat.categories)
    else:
        values = sorted(set(col.tolist()), key=lambda v: (type(v).__name__, v))
    return [_python(v) for v in values]


def make_setup(adata: Any, layer: Optional[str] = None, batch_key: Optional[str] = None,
               categorical_covariate_keys: Union[str, Sequence[str]] = (),
               continuous_covariate_keys: Union[str, Sequence[str]] = (),
               labels_key: Optional[str] = None) -> Setup:
    """The setup dict of an AnnData (keys checked, categories listed)."""
    if isinstance(categorical_covariate_keys, str):
        categorical_covariate_keys = (categorical_covariate_keys,)
    if isinstance(continuous_covariate_keys, str):
        continuous_covariate_keys = (continuous_covariate_keys,)
    roles = ([(batch_key, "batch_key")] if batch_key is not None else []) + \
        [(k, "categorical_covariate_keys") for k in categorical_covariate_keys]
    labels = [] if labels_key is None else [(labels_key, "labels_key")]
    keys = [k for k, _ in roles + labels] + list(continuous_covariate_keys)
    if len(set(keys)) != len(keys):
        raise ValueError(f"an obs column is named twice among batch_key and the "
                         f"covariate keys: {keys}")
    categorical = []
    for key, role in roles + labels:
        cats = _categories(_column(adata, key, role))
        if not cats:
            raise ValueError(f"{role}={key!r}: obs column has no category")
        categorical.append([key, cats])
    setup = {"layer": layer, "batch_key": batch_key, "categorical": categorical[:len(roles)],
             "continuous": list(continuous_covariate_keys), "codes": True,
             **({"labels": categorical[-1]} if labels else {})}
    conditions(setup, adata)  # continuous keys: present and finite
    return setup


def n_conditions(setup: Setup) -> int:
    """The width of c: the continuous keys (and the one-hot blocks in the older form)."""
    onehot = 0 if setup.get("codes") else sum(len(cats) for _, cats in setup["categorical"])
    return onehot + len(setup["continuous"])


def levels(setup: Setup) -> list[int]:
    """The model's categorical_covariates: the categories of each key, codes form only."""
    return [len(cats) for _, cats in setup["categorical"]] if setup.get("codes") else []


def with_batch(setup: Optional[Setup], side: Any, transform_batch: object) -> Any:
    """A call's checked side inputs (c, or the pair (c, codes)) with every
    cell's batch set to the category `transform_batch` of batch_key: its
    code (the codes form) or its one-hot block of c (the older form)."""
    if setup is None or setup["batch_key"] is None:
        raise ValueError("transform_batch needs a model built by VAE.from_anndata with "
                         "batch_key=")
    key, cats = setup["categorical"][0]
    if transform_batch not in cats:
        raise ValueError(f"transform_batch={transform_batch!r} is not a category of "
                         f"batch_key {key!r} (its categories: {cats})")
    if setup.get("codes"):  # the batch is the first covariate
        c, codes = side
        codes = codes.copy()
        codes[:, 0] = cats.index(transform_batch)
        return c, codes
    c = side.copy()
    c[:, :len(cats)] = 0.0
    c[:, cats.index(transform_batch)] = 1.0
    return c


def covariates(setup: Setup, adata: Any) -> tuple[Optional[I32], list[int], Optional[F32]]:
    """The cells' covariates as the core takes them: codes (n_obs, K) int32,
    one column per categorical key (the batch first; a category's code is
    its index in the stored list; then the label, if the setup has one),
    their levels (K), and the continuous keys
    as a float32 (n_obs, n_continuous) matrix; None for an empty part.
    Unknown categories, missing keys and NaN values are errors naming the key."""
    import pandas as pd  # anndata's own dependency: present whenever an AnnData is

    columns, levels = [], []
    labels = [setup["labels"]] if setup.get("labels") else []
    for i, (key, cats) in enumerate(setup["categorical"] + labels):
        role = "batch_key" if i == 0 and setup["batch_key"] is not None \
            else "labels_key" if i == len(setup["categorical"]) else "categorical_covariate_keys"
        values = np.asarray(_column(adata, key, role).astype(object))
        codes = pd.Index(cats, dtype=object).get_indexer(values)
        if (codes < 0).any():
            bad = values[np.flatnonzero(codes < 0)[0]]
            raise ValueError(f"obs column {key!r} ({role}) has category {bad!r}, unknown "
                             f"to this model (its categories: {cats})")
        columns.append(codes.astype(np.int32))
        levels.append(len(cats))
    cont = []
    for key in setup["continuous"]:
        col = _column(adata, key, "continuous_covariate_keys")
        try:
            values = col.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"continuous_covariate_keys: obs column {key!r} is not "
                             f"numeric (dtype {col.dtype})") from None
        if not np.isfinite(values).all():
            raise ValueError(f"continuous_covariate_keys: obs column {key!r} has a "
                             "non-finite value")
        cont.append(values.astype(np.float32))
    codes_out = np.stack(columns, axis=1) if columns else None
    return codes_out, levels, np.stack(cont, axis=1) if cont else None


def conditions(setup: Setup, adata: Any) -> Optional[F32]:
    """c (n_obs, n_conditions) float32 for the cells of `adata`, or None for
    a setup with no such key: in the older form the one-hot columns of
    covariates()' codes, then its continuous matrix; in the codes form the
    continuous matrix alone (errors as covariates())."""
    codes, n_cats, cont = covariates(setup, adata)
    blocks = []
    for k, n in enumerate([] if setup.get("codes") else n_cats):
        assert codes is not None  # levels come with codes
        block = np.zeros((len(codes), n), np.float32)
        block[np.arange(len(codes)), codes[:, k]] = 1.0
        blocks.append(block)
    if cont is not None:
        blocks.append(cont)
    return np.concatenate(blocks, axis=1) if blocks else None


def fill(model: object, adata: Any, c: Any,
         layer: Optional[str]) -> tuple[Any, Optional[str]]:
    """(c, layer) for a call on `adata`: c built from the model's setup when
    not given, the setup's layer when `layer` is None. A model with no setup
    returns them unchanged."""
    setup = getattr(model, "anndata_setup_", None)
    if setup is None:
        return c, layer
    if c is None:
        c = conditions(setup, adata)
    return c, setup["layer"] if layer is None else layer


def fill_codes(model: object, adata: Any, codes: Any) -> Any:
    """The codes for a call on `adata`: built from the model's setup (codes
    form) when not given; otherwise as given."""
    setup = getattr(model, "anndata_setup_", None)
    if codes is not None or setup is None or not setup.get("codes"):
        return codes
    return covariates(setup, adata)[0]


def check_stored(setup: Any, n_model_conditions: int, path: StrPath,
                 model_levels: Sequence[int] = (), n_labels: Optional[int] = None) -> Setup:
    """A setup read from a saved model's state, checked against its shape
    (its conditions, categorical covariates and labels; either form)."""
    try:
        ok = (isinstance(setup, dict)
              and all(isinstance(k, str) and isinstance(c, list) and c
                      for k, c in setup["categorical"])
              and all(isinstance(k, str) for k in setup["continuous"])
              and n_conditions(setup) == n_model_conditions
              and levels(setup) == list(model_levels)
              and (len(setup["labels"][1]) if "labels" in setup else None) == n_labels)
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{path!s} is corrupt: its AnnData setup does not match the "
                         f"model's {n_model_conditions} conditions and categorical "
                         f"covariates {list(model_levels)}"
                         + ("" if n_labels is None else f" and {n_labels} labels"))
    checked: Setup = setup
    return checked
