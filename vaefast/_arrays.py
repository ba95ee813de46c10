"""Arrays that are not in memory: how the model's methods recognise them and
hand them to the engine that takes them, without importing that engine.

An engine (vaefast.dask) registers, when it is imported, a predicate and a
table of functions by method name; a method decorated with `deferrable`
passes a data argument the predicate accepts to the engine's function of the
same name. vaefast/__init__.py imports the engines (they import no optional
package themselves), so the table is filled before any model exists.
"""

import functools
import inspect
from typing import Any, Callable, Mapping, TypeVar, cast

_F = TypeVar("_F", bound=Callable[..., Any])
# (accepts(data) -> bool, {method name: function(obj, *args, **kwargs)})
_ENGINES: list[tuple[Callable[[object], bool], Mapping[str, Callable[..., Any]]]] = []


def register_engine(accepts: Callable[[object], bool],
                    functions: Mapping[str, Callable[..., Any]]) -> None:
    """Route data that `accepts` recognises to `functions[method name]`."""
    _ENGINES.append((accepts, functions))


def deferrable(method: _F) -> _F:
    """Decorator: a data argument (the first after self: X or Z) that an
    engine accepts goes to that engine's function; anything else to the
    method itself."""
    name = method.__name__
    data_arg = list(inspect.signature(method).parameters)[1]

    @functools.wraps(method)
    def wrapper(self: object, *args: Any, **kwargs: Any) -> Any:
        data = args[0] if args else kwargs.get(data_arg)
        for accepts, functions in _ENGINES:
            if accepts(data):
                return functions[name](self, *args, **kwargs)
        return method(self, *args, **kwargs)

    return cast(_F, wrapper)  # functools.wraps: the method's own signature


def is_dask_array(X: object) -> bool:
    """Whether X is a dask.array.Array (without importing dask)."""
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "to_delayed")


def row_chunked(X: Any, n_cols: int, name: str) -> Any:
    """A Dask array X checked (2-D, n_cols columns, known row chunks) and
    chunked by whole rows."""
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-dimensional, got shape {X.shape}")
    if X.shape[1] != n_cols:
        raise ValueError(f"{name} must have {n_cols} columns, got {X.shape[1]}")
    if any(c != c for c in X.chunks[0]):
        raise ValueError(f"{name} has unknown chunk sizes: call "
                         f"{name}.compute_chunk_sizes() first")
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})  # every chunk holds whole rows
    return X
