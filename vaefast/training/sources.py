"""Where fit's rows come from: a *source* trains one epoch per run_epoch call.

What fit asks of a source besides run_epoch does not depend on where rows
come from (OneProcessSource); the in-memory source lives here, streams in
streaming.py, an MPI shard in data_parallel.py (which agrees on these
across ranks). The loop (loop.py) runs the epochs over any of them.
"""

import numpy as np

from .._internals import internals


class OneProcessSource:
    """What fit asks of a source besides run_epoch, for one process."""

    is_root = True  # writes checkpoints

    def total(self, values):
        """Sum of `values` over all processes."""
        return values

    def any(self, flag):
        """Whether `flag` is true in any process."""
        return bool(flag)

    def end_epoch(self, model) -> None:
        """Called after each epoch (the MPI source checks the ranks agree)."""


class InMemorySource(OneProcessSource):
    """Rows of one in-memory array (with their conditions and size factors),
    shuffled exactly by (seed, epoch)."""

    def __init__(self, model, X, batch_size, c=None, size_factors=None) -> None:
        inner = internals(model)
        self.X = inner.check_X(X)
        self.n_rows = self.X.shape[0]
        self.c, self.size_factors = inner.check_side(c, size_factors, self.n_rows)
        self.batch_size = min(batch_size, self.n_rows)

    def run_epoch(self, trainer, epoch, shuffle, bar):
        """Train one epoch; returns the number of rows trained on."""
        n = self.n_rows
        order = (np.random.default_rng([trainer.model.seed, epoch]).permutation(n)
                 .astype(np.int64) if shuffle else None)
        trainer.steps(self.X, order, bar, self.c, self.size_factors)
        return n
