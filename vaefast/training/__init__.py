"""Training: the loop (loop.py), where the rows come from (sources.py,
streaming.py, data_parallel.py) and what fit returns (history.py).

The model's fit forwards here with its arguments; they are checked once,
against the table of vaefast/_fit_options.py. Nothing here imports the
model: a model is driven through its public methods and vaefast/_internals.py.
"""

from typing import TYPE_CHECKING, Any, Mapping, Optional

from .. import _anndata_setup, _fit_options, _hidden_options, _rows
from .._internals import internals
from . import loop, streaming
from .history import History
from .sources import InMemorySource, Source

if TYPE_CHECKING:
    from ..model import VAE

__all__ = ["fit", "History"]


def make_source(model: "VAE", X: Any, batch_size: int, comm: Any, buffer_rows: Optional[int],
                c: object, size_factors: object, layer: Optional[str] = None,
                sparse_first_layer: bool = False, codes: object = None) -> Source:
    """The source of fit's rows: this rank's shard (comm), rows gathered a
    batch at a time (sparse, backed, AnnData: vaefast/_rows.py), a stream
    (memmap, Dask array, sequence or callable of row blocks) or an
    in-memory array."""
    if (c is not None or size_factors is not None) and comm is not None:
        raise ValueError("c= and size_factors= are not supported with comm= yet: "
                         "train a conditional or size-factor model in one process")
    X = _rows.resolve(X, "X", layer)
    _hidden_options.check_fit(model, getattr(X, "shape", (None,))[0], batch_size, comm)
    if comm is not None:
        from .data_parallel import ShardSource

        return ShardSource(model, X, batch_size, comm, codes)
    if isinstance(X, _rows.Rows):
        return streaming.RandomAccessSource(model, X, batch_size, buffer_rows, c,
                                            size_factors, sparse_first_layer, codes)
    if streaming.is_stream(X):
        if c is not None or size_factors is not None or codes is not None:
            raise ValueError("c=, size_factors= and codes= need X in memory (not a memmap, "
                             "Dask array or stream of blocks) for now")
        return streaming.make_source(model, X, batch_size, buffer_rows)
    if buffer_rows is not None:
        raise ValueError("buffer_rows applies only to streamed X (a memmap, a Dask "
                         "array, a sequence of arrays or a callable)")
    return InMemorySource(model, X, batch_size, c, size_factors, codes)


def _agree_across_ranks(source: Any, o: Mapping[str, Any], has_validation: bool) -> None:
    """With comm: refuse (on every rank) options that differ between ranks."""
    source.require_same(epochs=o["epochs"], batch_size=o["batch_size"],
                        learning_rate=o["learning_rate"], optimizer=o["optimizer"],
                        shuffle=o["shuffle"], validation=has_validation,
                        patience=o["early_stopping_patience"],
                        kl_warmup=o["kl_warmup_epochs"],
                        checkpoint=o["checkpoint"] is not None)


@_fit_options.declare
def fit(model: "VAE", X: object, *args: Any, **kwargs: Any) -> History:
    X, o = _fit_options.validate(model, X, *args, **kwargs)
    if _rows.is_anndata(X):  # a model built by from_anndata: c, codes and layer from it
        o["c"], o["layer"] = _anndata_setup.fill(model, X, o["c"], o["layer"])
        o["codes"] = _anndata_setup.fill_codes(model, X, o["codes"])
    source = make_source(model, X, o["batch_size"], o["comm"], o["buffer_rows"], o["c"],
                         o["size_factors"], o["layer"], o["sparse_first_layer"], o["codes"])
    X_val, side = o["validation_data"]
    if X_val is not None:
        if _rows.is_anndata(X_val) and side.get("c") is None:
            c_val, _ = _anndata_setup.fill(model, X_val, None, None)
            side = side if c_val is None else {**side, "c": c_val}
        if _rows.is_anndata(X_val) and side.get("codes") is None:
            codes_val = _anndata_setup.fill_codes(model, X_val, None)
            side = side if codes_val is None else {**side, "codes": codes_val}
        X_val = _rows.resolve(X_val, "validation_data",
                              o["layer"] if _rows.is_anndata(X_val) else None)
        if isinstance(X_val, _rows.Rows):  # elbo reads it a chunk at a time
            internals(model).check_rows(X_val)
        else:
            X_val = internals(model).check_X(X_val, "validation_data")
    if o["comm"] is not None:
        _agree_across_ranks(source, o, X_val is not None)
    return loop.run(model, source, o, (X_val, side))
