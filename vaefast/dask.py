"""Dask arrays in, Dask arrays out (dask is imported only when one arrives).

``VAE.encode / transform / decode / reconstruct / elbo / log_likelihood``
and ``VAETransformer.transform / score_samples`` accept a
``dask.array.Array`` and return a lazy one, chunked along rows like the input
(an input chunked along columns is rechunked to whole rows first). Each row
chunk runs the in-memory method on one worker, so the results are
bit-identical to the in-memory call:

* the deterministic methods work row by row;
* ``elbo`` and ``log_likelihood`` draw their noise from one NumPy generator
  seeded by ``seed``, row after row; a chunk starting at row ``a`` starts
  from that generator advanced past the draws of rows ``0 .. a-1`` (skipped
  in pieces, so the cost of a chunk grows with its offset: small for
  ``elbo``, ``n_samples`` times more for ``log_likelihood``). With
  ``seed=None`` one seed is drawn for the whole array.

The model enters the graph once, as one ``dask.delayed`` object every chunk
depends on, so a distributed cluster ships it to each worker once (pickled
through its saved-model bytes), not once per chunk.
"""

from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import numpy as np
from numpy.typing import DTypeLike, NDArray

from ._arrays import is_dask_array, register_engine, row_chunked
from ._validation import as_int, as_seed

if TYPE_CHECKING:
    from .model import VAE
    from .sklearn import VAETransformer

# A dask.array.Array. Dask is optional (vaefast never imports it at import
# time) and its arrays are not typed precisely enough to check against.
DaskArray = Any
_Owner = Union["VAE", "VAETransformer"]
# fn(model or estimator, chunk of rows, index of the chunk's first row)
_RowFn = Callable[[Any, NDArray[Any], int], NDArray[Any]]

__all__ = ["is_dask_array", "encode", "transform", "decode", "reconstruct", "elbo",
           "log_likelihood", "score_samples"]

_SKIP_PIECE = 1 << 20  # normals discarded per call when advancing a generator


def _model(obj: _Owner) -> "VAE":
    """The VAE behind obj (a VAE or a fitted VAETransformer)."""
    model: "VAE" = getattr(obj, "model_", obj)
    return model


def _map_rows(obj: _Owner, X: DaskArray, n_cols: int, name: str, fn: _RowFn,
              width: Optional[int], dtype: DTypeLike) -> DaskArray:
    """Apply fn(obj, chunk, first_row) to every row chunk of X, lazily.

    Returns a dask array of shape (n, width), or (n,) if width is None.
    """
    import dask
    import dask.array as da

    X = row_chunked(X, n_cols, name)
    owner = dask.delayed(obj, pure=False)  # one graph key: shipped once per worker
    call = dask.delayed(fn, pure=True)
    starts = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).astype(int)
    parts = []
    for block, start, rows in zip(X.to_delayed()[:, 0], starts, X.chunks[0]):
        shape = (rows,) if width is None else (rows, width)
        parts.append(da.from_delayed(call(owner, block, int(start)), shape=shape,
                                     dtype=dtype))
    return da.concatenate(parts, axis=0)


# ---- deterministic methods: each chunk is independent
def _encode_rows(obj: "VAE", x: NDArray[Any], start: int) -> NDArray[Any]:
    return np.hstack(obj.encode(x))


def _transform_rows(obj: _Owner, x: NDArray[Any], start: int) -> NDArray[Any]:
    return obj.transform(x)


def _decode_rows(obj: "VAE", z: NDArray[Any], start: int) -> NDArray[Any]:
    return obj.decode(z)


def _reconstruct_rows(obj: "VAE", x: NDArray[Any], start: int) -> NDArray[Any]:
    return obj.reconstruct(x)


def _score_rows(obj: "VAETransformer", x: NDArray[Any], start: int) -> NDArray[Any]:
    return obj.score_samples(x)  # VAETransformer: per-row seeded noise


def encode(model: "VAE", X: DaskArray) -> tuple[DaskArray, DaskArray]:
    """Lazy :meth:`VAE.encode`: (mu, logvar), each (n, latent_dim) float32."""
    Z = model.latent_dim
    both = _map_rows(model, X, model.n_features, "X", _encode_rows, 2 * Z, np.float32)
    return both[:, :Z], both[:, Z:]


def transform(obj: _Owner, X: DaskArray) -> DaskArray:
    """Lazy ``transform`` of a VAE or a fitted VAETransformer: (n, latent_dim)."""
    m = _model(obj)
    return _map_rows(obj, X, m.n_features, "X", _transform_rows, m.latent_dim, np.float32)


def decode(model: "VAE", Z: DaskArray) -> DaskArray:
    """Lazy :meth:`VAE.decode`: (n, n_features) float32."""
    return _map_rows(model, Z, model.latent_dim, "Z", _decode_rows, model.n_features,
                     np.float32)


def reconstruct(model: "VAE", X: DaskArray) -> DaskArray:
    """Lazy :meth:`VAE.reconstruct`: (n, n_features) float32."""
    return _map_rows(model, X, model.n_features, "X", _reconstruct_rows, model.n_features,
                     np.float32)


def score_samples(est: "VAETransformer", X: DaskArray) -> DaskArray:
    """Lazy ``VAETransformer.score_samples``: (n,) float64."""
    return _map_rows(est, X, _model(est).n_features, "X", _score_rows, None, np.float64)


# ---- noisy methods: the generator is advanced to the chunk's first row
def _generator_at(seed: int, draws: int) -> np.random.Generator:
    """default_rng(seed) after `draws` standard normals (as one call would)."""
    rng = np.random.default_rng(seed)
    while draws > 0:
        k = min(draws, _SKIP_PIECE)
        rng.standard_normal(k)
        draws -= k
    return rng


def _whole_array_seed(seed: Optional[int]) -> int:
    if seed is None:  # one fresh seed for every chunk of this call
        return int(np.random.default_rng().integers(2 ** 63))
    return as_seed(seed)


def elbo(model: "VAE", X: DaskArray, seed: Optional[int] = None) -> DaskArray:
    """Lazy :meth:`VAE.elbo`: (n,) float64, bit-identical to the in-memory call."""
    whole = _whole_array_seed(seed)
    Z = model.latent_dim

    def rows(m: "VAE", x: NDArray[Any], start: int) -> NDArray[Any]:
        return m.elbo(x, seed=_generator_at(whole, start * Z))

    return _map_rows(model, X, model.n_features, "X", rows, None, np.float64)


def log_likelihood(model: "VAE", X: DaskArray, n_samples: int = 100,
                   seed: Optional[int] = None) -> DaskArray:
    """Lazy :meth:`VAE.log_likelihood`: (n,) float64, bit-identical to the
    in-memory call (see the module docstring for the cost of the noise)."""
    whole = _whole_array_seed(seed)
    K = as_int(n_samples, "n_samples", minimum=1)
    Z = model.latent_dim

    def rows(m: "VAE", x: NDArray[Any], start: int) -> NDArray[Any]:
        return m.log_likelihood(x, n_samples=K, seed=_generator_at(whole, start * K * Z))

    return _map_rows(model, X, model.n_features, "X", rows, None, np.float64)


_LAZY = {"encode": encode, "transform": transform, "decode": decode,
         "reconstruct": reconstruct, "elbo": elbo, "log_likelihood": log_likelihood,
         "score_samples": score_samples}
register_engine(is_dask_array, _LAZY)
