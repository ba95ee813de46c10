"""The small internal interface of a VAE for the code that drives it from
outside: the training loop and its sources (memory, streams, MPI shards) and
serialisation. They use this and the model's public methods, never the
model's private attributes, so the model can change inside without them.

This module and vaefast/model.py are the only ones that touch a VAE's
private attributes (tests/test_structure.py checks it). It imports nothing
of the model: it works on any object the model passes.
"""

from typing import TYPE_CHECKING, Any, ContextManager, Mapping, Optional

import numpy as np

from ._core import GRADS, MOMENT1, MOMENT2, PARAMS, VAECore  # noqa: F401  (the buffers)
from ._typing import F32
from ._validation import as_float32_array, as_weight

if TYPE_CHECKING:
    from ._covariate_codes import Side
    from ._rows import Rows
    from ._sparse_batch import CSRBatch
    from .model import VAE

__all__ = ["GRADS", "MOMENT1", "MOMENT2", "PARAMS", "Internals", "internals"]


class Internals:
    """What training, streaming, MPI and serialisation may use of `model`."""

    __slots__ = ("model",)

    def __init__(self, model: "VAE") -> None:
        self.model = model

    @property
    def core(self) -> VAECore:
        """The binding's VAECore: the training steps and the flat buffers."""
        return self.model._core

    def check_X(self, X: object, name: str = "X") -> F32:
        """Training rows: 2-D float32, n_features columns, valid targets."""
        return self.model._check_X(X, name, targets=True)

    def check_rows(self, rows: "Rows") -> "Rows":
        """A sparse or backed input (vaefast/_rows.py Rows): n_features
        columns, at least one row, valid stored values (an in-memory matrix
        is checked whole now, a backed one a batch at a time when read)."""
        n_features = self.model.n_features
        if rows.shape[1] != n_features:
            raise ValueError(f"{rows.name} must have {n_features} columns (n_features), "
                             f"got {rows.shape[1]}")
        if rows.shape[0] == 0:
            raise ValueError(f"{rows.name} must not be empty, got shape {rows.shape}")
        return rows.check(self._check_values, self.model._lik.check_row_totals)

    def check_csr_rows(self, batch: "CSRBatch", name: str) -> None:
        """CSR rows read from a file (canonical: no duplicate columns): their
        stored values within the likelihood's targets (zeros always are),
        and, where the library size is the observed total, no row whose
        total is zero. Those likelihoods' values were just checked to be
        non-negative, so a row's total is zero exactly when its largest
        stored value is (or it stores none): a float32 maximum per row
        instead of a float64 sum, no temporaries the size of the entries."""
        data = batch.data[batch.indptr[0]:batch.indptr[-1]]
        self._check_values(data, name)
        lik = self.model._lik
        if lik.observed_library:
            starts = batch.indptr[:-1] - batch.indptr[0]
            stored = np.diff(batch.indptr) > 0
            most = np.zeros(starts.size, dtype=np.float32)
            if data.size:
                most[stored] = np.maximum.reduceat(data, starts[stored])
            lik.check_row_totals(most, name)

    def _check_values(self, values: object, name: str) -> F32:
        values = as_float32_array(values, name, allow_empty=True)
        return self.model._lik.check_targets(values, name)

    def check_side(self, c: object, size_factors: object, n: int,
                   codes: object = None) -> tuple["Side", Optional[F32]]:
        """The conditions (with the codes: the core's pair) and size
        factors of n rows (None where absent)."""
        return (self.model._check_c(c, n, codes=codes),
                self.model._check_size_factors(size_factors, n))

    def check_eps(self, eps: object, n: int) -> F32:
        """Given noise of n rows: (n, latent_dim) float32."""
        return self.model._check_eps(eps, n)

    @property
    def observed_library(self) -> bool:
        """Whether the likelihood's library is each row's total (scVI)."""
        return bool(self.model._lik.observed_library)

    def scratch(self, kind: str = "infer") -> F32:
        """This thread's inference workspace ("infer": encode / decode of a
        chunk; "elbo")."""
        return self.model._scratch(kind)

    def decode_raw(self, Z: F32, mean: bool, size_factors: Optional[F32],
                   side: "Side" = None) -> F32:
        """The decoder on checked latents of an unconditional model, with
        its checked codes (check_side's pair) if it has categorical covariates."""
        return self.model._decode_raw(Z, mean, side, size_factors)

    def exclusive(self, what: str) -> ContextManager[None]:
        """Context: the model's training lock, or RuntimeError naming `what`."""
        return self.model._exclusive(what)

    def get_buffer(self, which: int) -> F32:
        return self.core.get_buffer(which)

    def set_buffer(self, which: int, flat: F32) -> None:
        self.core.set_buffer(which, flat)

    @property
    def num_params(self) -> int:
        return int(self.core.num_params)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """get_weights() key -> shape."""
        return self.model._layout.shapes()

    def named(self, flat: F32) -> dict[str, F32]:
        """A flat buffer as a dict keyed like get_weights()."""
        return self.model._layout.named_from_flat(flat)

    def flat(self, named: Mapping[str, object]) -> F32:
        """A dict keyed like get_weights() (checked) as a flat buffer."""
        return self.model._layout.flat_from_named(named, as_weight)


def internals(model: "VAE") -> Internals:
    """The internal interface of `model`."""
    return Internals(model)
