"""Where fit's rows come from: a *source* trains one epoch per run_epoch call.

What fit asks of a source besides run_epoch does not depend on where rows
come from (OneProcessSource); the in-memory source lives here, streams in
streaming.py, an MPI shard in data_parallel.py (which agrees on these
across ranks). The loop (loop.py) runs the epochs over any of them.
"""

from typing import TYPE_CHECKING, Optional, Protocol

import numpy as np

from .._internals import internals
from .._typing import F64, I64
from .progress import Bar

if TYPE_CHECKING:
    from ..model import VAE
    from .loop import Trainer

class Source(Protocol):
    """What the loop (loop.py) asks of a source of rows."""

    is_root: bool
    batch_size: int

    @property
    def n_rows(self) -> Optional[int]: ...  # None: a stream of unknown length
    def total(self, values: F64) -> F64: ...
    def any(self, flag: bool) -> bool: ...
    def end_epoch(self, model: "VAE") -> None: ...
    def run_epoch(self, trainer: "Trainer", epoch: int, shuffle: bool,
                  bar: Optional[Bar]) -> int: ...


class OneProcessSource:
    """What fit asks of a source besides run_epoch, for one process."""

    is_root = True  # writes checkpoints

    def total(self, values: F64) -> F64:
        """Sum of `values` over all processes."""
        return values

    def any(self, flag: object) -> bool:
        """Whether `flag` is true in any process."""
        return bool(flag)

    def end_epoch(self, model: "VAE") -> None:
        """Called after each epoch (the MPI source checks the ranks agree)."""


class InMemorySource(OneProcessSource):
    """Rows of one in-memory array (with their conditions and size factors),
    shuffled exactly by (seed, epoch)."""

    def __init__(self, model: "VAE", X: object, batch_size: int, c: object = None,
                 size_factors: object = None, codes: object = None) -> None:
        inner = internals(model)
        self.X = inner.check_X(X)
        self.n_rows: int = self.X.shape[0]
        self.c, self.size_factors = inner.check_side(c, size_factors, self.n_rows, codes)
        self.batch_size = min(batch_size, self.n_rows)

    def run_epoch(self, trainer: "Trainer", epoch: int, shuffle: bool,
                  bar: Optional[Bar]) -> int:
        """Train one epoch; returns the number of rows trained on."""
        n = self.n_rows
        order: Optional[I64] = (np.random.default_rng([trainer.model.seed, epoch]).permutation(n)

                 .astype(np.int64) if shuffle else None)
        trainer.steps(self.X, order, bar, self.c, self.size_factors)
        return n
