"""Sparse, backed and AnnData input to the inference methods (``encode``,
``transform``, ``decode``, ``reconstruct``, ``elbo``, ``log_likelihood``,
``get_normalized_expression`` and the scikit-learn transformer's ``transform`` / ``score_samples``).

X is read a chunk of rows at a time through vaefast/_rows.py (about 8 MiB
dense per chunk); each chunk runs the in-memory method and the results are
concatenated, so they are bit-identical to the call on the dense array
(but see the CSR first layer below):
the deterministic methods work row by row, and ``elbo`` /
``log_likelihood`` draw their noise from one NumPy generator, row after
row, which every chunk continues. ``layer=`` names an AnnData layer; a model
built by ``VAE.from_anndata`` reads c and its layer from the AnnData
(vaefast/_anndata_setup.py).
Per-row arguments (``c``, ``size_factors``, ``eps``, ``y``) are cut into
the same chunks. On sparse rows an unconditional VAE's ``encode``,
``transform``, ``reconstruct`` and ``elbo`` run their first layer on the
chunk's CSR form instead (vaefast/_sparse_infer.py): equal to the dense
chunk's results within float32 rounding, not bit for bit.
"""

import inspect
from typing import Any, Callable, Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from . import _anndata_setup, _rows, _sparse_infer
from ._arrays import register_engine
from ._validation import as_seed

_PER_ROW = ("c", "size_factors", "eps", "y", "codes")
_NOISY = ("elbo", "log_likelihood", "get_normalized_expression")
_MOST_ROWS = 4096  # the model's own inference chunk


def _generator(seed: "int | np.random.Generator | None") -> np.random.Generator:
    """One generator for every chunk: rows draw from it in order."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(None if seed is None else as_seed(seed))


def _per_row(value: Any, key: str, n: int) -> Any:
    """A per-row argument as an array of n rows (None stays None)."""
    if value is None:
        return None
    value = value if isinstance(value, np.ndarray) else np.asarray(value)
    if value.ndim == 0 or value.shape[0] != n:
        raise ValueError(f"{key} must have {n} rows (one per row of X), got shape "
                         f"{value.shape}")
    return value


def _joined(parts: Sequence[Any]) -> Any:
    if isinstance(parts[0], tuple):  # encode: (mu, logvar)
        return tuple(np.concatenate(p) for p in zip(*parts))
    return np.concatenate(parts)


def _by_chunks(name: str) -> Callable[..., Any]:
    """The engine function for method `name`: resolve X, run the method on
    each chunk of its rows, join the results."""

    def call(obj: Any, *args: Any, layer: Optional[str] = None, **kwargs: Any) -> Any:
        method = getattr(obj, name)
        signature = inspect.signature(method)
        arguments = dict(signature.bind(*args, **kwargs).arguments)
        data_arg = next(iter(signature.parameters))
        data = arguments.pop(data_arg)
        if _rows.is_anndata(data) and "c" in signature.parameters:
            arguments["c"], layer = _anndata_setup.fill(obj, data, arguments.get("c"), layer)
            if "codes" in signature.parameters:
                arguments["codes"] = _anndata_setup.fill_codes(obj, data, arguments.get("codes"))
        rows = _rows.resolve(data, data_arg, layer)
        if not isinstance(rows, _rows.Rows):  # an AnnData's dense matrix
            return method(rows, **arguments)
        n = rows.n_rows
        if n == 0:  # the method names the problem
            return method(rows.take(slice(0, 0)), **arguments)
        if name in _NOISY:
            arguments["seed"] = _generator(arguments.get(
                "seed", signature.parameters["seed"].default))
        for key in _PER_ROW:
            if key in arguments:
                arguments[key] = _per_row(arguments[key], key, n)
        step = _rows.chunk_rows(rows.shape[1], _MOST_ROWS)
        sparse = _sparse_infer.applies(obj, name, rows, arguments)
        if sparse:
            _sparse_infer.prepare(rows)
        parts: list[Any] = []
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            chunk = {k: v[lo:hi] if k in _PER_ROW and v is not None else v
                     for k, v in arguments.items()}
            if sparse:  # the CSR first layer: the chunk is not densified
                parts.append(_sparse_infer.run(obj, name, rows.take_csr(slice(lo, hi)), chunk))
            else:
                parts.append(method(rows.take(slice(lo, hi)), **chunk))
        return _joined(parts)

    call.__name__ = name
    return call


_METHODS = ("encode", "transform", "decode", "reconstruct", "elbo", "log_likelihood",
            "score_samples", "get_normalized_expression")
register_engine(_rows.is_gatherable, {name: _by_chunks(name) for name in _METHODS})
