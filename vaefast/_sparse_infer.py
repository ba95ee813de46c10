"""Inference on CSR rows: ``encode``, ``transform``, ``reconstruct`` and
``elbo`` of an unconditional VAE on a chunk of sparse rows, with the
encoder's first layer run by the CSR kernels on the stored entries (the
core's vf_vae_encode_rows / vf_vae_elbo_rows with the rows' CSR form)
instead of a GEMM over the densified chunk.

vaefast/_gathered.py hands each chunk here when :func:`applies`; the results
equal the dense path's within float32 rounding of the first layer's sums
(the summation order differs), the bound the training path states
(docs/single-cell.md; tests/test_sparse_inference.py). ``elbo`` still
densifies the chunk for its loss targets; ``encode`` / ``transform`` /
``reconstruct`` never do.
"""

from typing import Any, Optional, cast

import numpy as np

from ._internals import Internals, internals
from ._sparse_batch import CSRBatch
from ._typing import F32

_METHODS = frozenset(("encode", "transform", "reconstruct", "elbo"))


def applies(obj: Any, name: str, rows: Any, arguments: dict[str, Any]) -> bool:
    """Whether method `name` of `obj` on `rows` (a _rows.Rows) with the
    call's `arguments` runs here: a float32 call (bf16 runs the dense path,
    which has the bf16 layers) of a VAE without conditions (the CSR first
    layer has no condition rows) reading a matrix that gives CSR rows."""
    from .model import VAE  # model imports the engines: import at call time

    return (name in _METHODS and isinstance(obj, VAE) and obj.n_conditions == 0
            and not obj.categorical_covariates
            and (arguments.get("precision") or obj.precision) == "fp32" and rows.sparse)


def prepare(rows: Any) -> None:
    """Mark `rows` (an in-memory _rows.Rows) as sorted within each row when
    its matrix says so (scipy's has_canonical_format: sorted columns, no
    duplicates; scipy finds out with one pass in C if it does not know),
    so that take_csr does not sort every chunk again. Fit learns this from
    its own check of the values, which inference does not run."""
    if rows.in_memory and getattr(rows.matrix, "has_canonical_format", False) is True:
        rows.sorted_rows = True


def row_totals(batch: CSRBatch) -> F32:
    """Each row's sum of stored values (float64 running sums, exact for
    counts below 2^53), as float32: scVI's observed library."""
    ends = np.concatenate(([0.0], np.cumsum(batch.data, dtype=np.float64)))
    return cast(F32, (ends[batch.indptr[1:]] - ends[batch.indptr[:-1]]).astype(np.float32))


def _encode(inner: Internals, batch: CSRBatch) -> tuple[F32, F32]:
    return inner.core.encode(None, inner.scratch(), None, csr=batch)


def _reconstruct(inner: Internals, batch: CSRBatch, s: Optional[F32]) -> F32:
    if s is None and inner.observed_library:
        s = row_totals(batch)
    return inner.decode_raw(_encode(inner, batch)[0], True, s)


def _elbo(inner: Internals, batch: CSRBatch, seed: Any, s: Optional[F32],
          eps: Optional[Any]) -> Any:
    from ._validation import noise_generator as _noise_generator

    targets = inner.check_X(batch.toarray())
    n = batch.shape[0]
    if eps is not None:
        noise = inner.check_eps(eps, n)
    else:  # the generator's next n rows, as the dense path draws them
        drawn = _noise_generator(seed).standard_normal((n, inner.model.latent_dim))
        noise = drawn.astype(np.float32)
    return inner.core.elbo(targets, noise, inner.scratch("elbo"), None, s, csr=batch)


def run(model: Any, name: str, batch: CSRBatch, arguments: dict[str, Any]) -> Any:
    """Method `name` of `model` on the CSR rows `batch`, with the method's
    other arguments (c must be None: :func:`applies` holds)."""
    inner = internals(model)
    _, s = inner.check_side(arguments.get("c"), arguments.get("size_factors"), batch.shape[0])
    with inner.core.reading():  # one training step's weights throughout
        if name == "encode":
            return _encode(inner, batch)
        if name == "transform":
            return _encode(inner, batch)[0]
        if name == "reconstruct":
            return _reconstruct(inner, batch, s)
        return _elbo(inner, batch, arguments.get("seed"), s, arguments.get("eps"))
