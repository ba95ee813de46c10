"""The gradient exchange and optimizer step of a data-parallel step when
every rank runs on one machine: through an MPI-3 shared-memory window
instead of an Allreduce (the MPI path of vaefast/training/data_parallel.py).

Each rank owns one slice of the parameters (`slices`). While the window is
open, each rank's model computes its gradient straight into its slot of the
window (VAECore.use_grads), so no gradient is copied in, and from the end
of the first step its weights are the window's shared parameter vector
itself (VAECore.use_params), so no weights are copied in either. A step:

1. each rank takes its model's write lock, writes its failure flag into
   its header; barrier;
2. each rank sums its slice of every rank's gradient, in rank order
   (g_0 + g_1 + ... + g_{N-1}, left to right), into its own gradient
   buffer, then runs the optimizer on its slice only (ZeRO-1: the moments of
   a slice are current on its owner only), in place on its slice of the
   shared parameter vector; barrier; each rank releases its lock.

Every write to the shared vector falls between the two barriers, while
every rank holds its own model's write lock, so a reader of any rank's
model (another thread's encode) sees whole steps. Copying the 2.6 MB of
weights into each rank's own buffer after every step, as this exchange
first did, cost more than the copy (the ranks' caches held two copies of
the weights): 2 ranks, 400 steps of the 784-400-20 model, 2.04-2.16 ms a
step without it against 2.21-2.63 with it.

Why it is faster than the Allreduce on one machine: MPICH's shared-memory
Allreduce copies the 2.6 MB gradient in and out of its own buffers, and
makes no progress on a non-blocking one while the rank computes; here each
byte crosses between ranks once each way, and the optimizer's pass, the
largest memory-bound part after the backward, is split between the ranks.

Why the bits do not move: with two ranks each summed element is one IEEE
addition, g_0 + g_1 = g_1 + g_0, as in any Allreduce; with more ranks the
rank order is fixed, so the result is deterministic but not necessarily
MPICH's order (which depends on its algorithm and the message size). The
optimizer is element-wise (vf_vae_apply_update_slice), so a slice's new
parameters and moments are those of the whole-buffer update. The moments
are gathered onto every rank when the exchange closes (the end of an
epoch), so checkpoints, the epoch's CRC check and the model after fit see
the same state as after the Allreduce path.

Synchronization follows MPI's shared-memory model: one passive epoch
(Lock_all) for the window's life, and Win.Sync (a memory barrier) around
every barrier of the communicator.
"""

from typing import Any, List, Tuple

import numpy as np

from .. import _core

__all__ = ["SharedExchange", "on_one_node", "slices"]

SLICE_ALIGN = 16  # floats: one 64-byte line, so no two ranks write one line
HEADER = 16       # int32 per rank before its gradient slot (one line)
_FAILED, _STATUS = 0, 1  # header entries: the step's failure flag, the update's status


def slices(n: int, size: int) -> List[Tuple[int, int]]:
    """[(lo, hi)] of the parameters each rank updates: contiguous, in rank
    order, starting on SLICE_ALIGN boundaries (empty ones possible)."""
    bounds = [min(n, (n * r // size) // SLICE_ALIGN * SLICE_ALIGN) for r in range(size)] + [n]
    return [(bounds[r], bounds[r + 1]) for r in range(size)]


def on_one_node(comm: Any, MPI: Any) -> bool:
    """Whether every rank of comm can share memory with every other."""
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return bool(node.Get_size() == comm.Get_size())
    finally:
        node.Free()


class SharedExchange:
    """A window for one epoch's steps: `reduce` then `update` each step,
    `close` once (every rank, also after a failed step). Construction is
    collective (the allocation); if it returns, the caller checks `mapped`
    on every rank before the first step (the views of the peers' segments
    may still have failed here) and closes it unused otherwise."""

    def __init__(self, core: _core.VAECore, comm: Any, MPI: Any) -> None:
        self.core, self.comm, self.MPI = core, comm, MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        n = core.num_params
        self.lo, self.hi = slices(n, self.size)[self.rank]
        # rank r's segment: header, gradient slot; rank 0's also the shared
        # parameters; each a whole number of lines, so that every slot and
        # the parameters start on a line where the window does
        padded = -(-n // SLICE_ALIGN) * SLICE_ALIGN
        floats = HEADER + padded + (padded if self.rank == 0 else 0)
        self.win = MPI.Win.Allocate_shared(4 * floats, 4, comm=comm)
        self.closed = self.locked = self.mapped = False
        self.holding = False     # this rank's model's write lock (hold_write)
        self.params_lent = False  # the model's weights are self.params
        try:
            self._map(n, HEADER + padded)
            self.mapped = True
        except Exception:  # the caller agrees on falling back (no collective here)
            pass

    def _map(self, n: int, params_at: int) -> None:
        """This rank's views of every segment (no collective), the shared
        parameters at float `params_at` of rank 0's; then lends this rank's
        slot to the model (the last step: `mapped` says it was lent)."""
        self.win.Lock_all(self.MPI.MODE_NOCHECK)
        self.locked = True
        self.headers, self.slots = [], []
        for q in range(self.size):
            buf = self.win.Shared_query(q)[0]
            self.headers.append(np.frombuffer(buf, dtype=np.int32, count=HEADER))
            self.slots.append(np.frombuffer(buf, dtype=np.float32, count=n, offset=4 * HEADER))
            if q == 0:
                self.params = np.frombuffer(buf, dtype=np.float32, count=n,
                                            offset=4 * params_at)
        # the shared vector holds the weights between steps: this rank's
        # slice is where its update runs; after the first step the model's
        # weights are the vector itself (update)
        self.params[self.lo:self.hi] = self.core.buffer_array(_core.PARAMS)[self.lo:self.hi]
        # the backward pass writes into this rank's slot (until close)
        self.grads = self.slots[self.rank]
        self.core.use_grads(self.grads)

    def _sync(self) -> None:
        """Every rank's writes so far are visible to every rank."""
        self.win.Sync()
        self.comm.Barrier()
        self.win.Sync()

    def _hold(self, on: bool) -> None:
        if on != self.holding:
            self.core.hold_write(on)
            self.holding = on

    def reduce(self, failed: bool) -> bool:
        """Take the model's write lock (until update), publish this rank's
        gradient and failure flag; sum this rank's slice in rank order into
        the gradient buffer. Returns whether any rank failed (then nothing
        is summed and the lock is released)."""
        lo, hi, g = self.lo, self.hi, self.grads  # g: this rank's slot
        self._hold(True)  # before the barrier: no rank writes the weights yet
        try:
            self.headers[self.rank][_FAILED] = 1 if failed else 0
            self._sync()
        except BaseException:
            self._hold(False)
            raise
        if any(h[_FAILED] for h in self.headers):
            self._hold(False)
            return True
        own = g[lo:hi] if self.rank < 2 else g[lo:hi].copy()  # (read before overwritten)
        parts = [own if q == self.rank else self.slots[q][lo:hi] for q in range(self.size)]
        np.add(parts[0], parts[1], out=g[lo:hi])
        for part in parts[2:]:
            np.add(g[lo:hi], part, out=g[lo:hi])
        return False

    def update(self, step: int, lr: float, beta1: float, beta2: float, adam_eps: float,
               weight_decay: float, optimizer: str) -> int:
        """The optimizer on this rank's slice of the shared weights (the
        lock reduce took held), a barrier, the lock released. Returns the
        first failing rank's status (VF_OK = 0 when none failed), the same
        on every rank. Held-back entries (an overflowing update) keep their
        old values in the shared vector, as the whole-buffer update leaves
        them."""
        try:
            status = self.core.apply_update_slice(
                self.lo, self.hi, self.params[self.lo:self.hi], step, lr, beta1, beta2,
                adam_eps, weight_decay, optimizer, locked=True)
            self.headers[self.rank][_STATUS] = status
            self._sync()
        finally:
            self._hold(False)
        if not self.params_lent:  # the first step: the shared vector becomes the weights
            self.core.use_params(self.params)
            self.params_lent = True
        return next((int(h[_STATUS]) for h in self.headers if h[_STATUS]), 0)

    def close(self, gather: bool = True) -> None:
        """Gather every slice's moments onto every rank (unless told not
        to: no step ran), free the window."""
        if self.closed:
            return
        self.closed = True
        self._hold(False)  # a step that raised between reduce and update
        if self.params_lent:  # the model's own buffers again, before the window goes
            self.core.use_params(None)  # (the moments' gather reuses the vector)
        if self.mapped:
            self.core.use_grads(None)
        lo, hi = self.lo, self.hi
        for which in (_core.MOMENT1, _core.MOMENT2) if gather else ():  # SGD: velocity, zeros
            moments = self.core.buffer_array(which)
            self._sync()  # every rank is done reading the shared vector
            self.params[lo:hi] = moments[lo:hi]
            self._sync()
            moments[:lo] = self.params[:lo]
            moments[hi:] = self.params[hi:]
        if gather:
            self._sync()
        if self.locked:
            self.win.Unlock_all()
        self.win.Free()  # collective
