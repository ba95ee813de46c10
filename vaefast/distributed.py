"""Synchronous data-parallel training over MPI: ``VAE.fit(X_shard, comm=comm)``.

mpi4py is never imported by vaefast itself: the caller passes a
communicator (``from mpi4py import MPI; comm = MPI.COMM_WORLD``).

The contract (docs/scaling.md):

* Every rank builds (or loads) the same model and calls fit with its own
  shard of rows and the same arguments. ``batch_size`` B is the global
  minibatch: rank r takes ``b_r = B // N + (r < B % N)`` rows of its shard per
  step, in storage order with ``shuffle=False``, or in the order
  ``default_rng([seed, epoch, r]).permutation(n_r)`` with ``shuffle=True``.
  An epoch has ``max_r ceil(n_r / b_r)`` steps; a rank whose shard has run out
  contributes no rows to the last steps.
* Step s is step s of a one-process run whose minibatch is the
  concatenation, in rank order, of each rank's rows of step s: a row's noise
  is eps(seed, step, position in that global minibatch, col) (the C core is
  given the rank's row offset) and each rank's gradient is scaled by
  1/(global rows), so one ``Allreduce(SUM)`` of the flat gradient buffer, in
  place, gives every rank the one-process gradient up to float32 summation
  order. When every rank is on one machine the sum goes through an MPI-3
  shared-memory window instead: each rank sums one slice in rank order and
  runs the optimizer on it, then the ranks copy each other's slices
  (vaefast/training/shm_exchange.py; ``VAEFAST_MPI_SHM=0`` turns it off).
  Otherwise one blocking Allreduce after the backward pass, or, with
  ``VAEFAST_MPI_OVERLAP=1``, fixed buckets of whole layers, each started
  (``Iallreduce``) as soon as the backward pass has completed it
  (vaefast/training/overlap.py). With two ranks all three give the same
  bits. The weights stay identical on every rank; a CRC of the weights and
  moments is compared after every epoch.
* With each gradient exchange, before the update, the ranks share an
  error flag: a rank that fails (bad rows, NaN/Inf, any exception) still
  makes every collective of the step, then raises its own exception and
  every other rank raises :class:`DistributedError` naming it; no rank hangs.
* Rank 0 writes fit's ``checkpoint``; resuming is loading that file on every
  rank and calling fit again.
* Each rank runs one OpenMP thread unless ``OMP_NUM_THREADS`` is set (ranks
  are usually one per core).
"""

from .training.data_parallel import DistributedError, ShardSource, rank_batch, shard_rows

__all__ = ["DistributedError", "ShardSource", "rank_batch", "shard_rows"]
