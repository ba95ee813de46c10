"""The part of a training row source that does not depend on where rows
come from: what fit asks of a source besides run_epoch (vaefast/train.py
runs the epochs; in-memory rows live there, streams in _streaming.py, an MPI
shard in distributed.py). A module of its own so that the sources import it,
not the training loop that imports them.
"""


class OneProcessSource:
    """What fit asks of a source besides run_epoch, for one process (the
    MPI source in vaefast/distributed.py agrees on these across ranks)."""

    is_root = True  # writes checkpoints

    def total(self, values):
        """Sum of `values` over all processes."""
        return values

    def any(self, flag):
        """Whether `flag` is true in any process."""
        return bool(flag)

    def end_epoch(self, model):
        """Called after each epoch (the MPI source checks the ranks agree)."""
