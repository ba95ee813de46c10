"""The gradient exchange of a data-parallel step, overlapped with the
backward pass (the MPI path of vaefast/training/data_parallel.py).

The flat gradient buffer is cut once, from the model's layout, into fixed
buckets of whole layers, last layer first (the order the backward pass
completes them), each at least ``bucket_floats`` long, plus a last bucket
for the parameters after the layers (likelihood, normalisation and
covariate parameters, final only when the backward call returns). As soon
as the C backward reports a layer done (VAECore.shard_grads' ``on_layer``),
every bucket it completes starts its non-blocking ``Iallreduce(SUM)`` in
place; the rest start when the call returns, then all are waited for.

Why the bits do not move: the buckets depend on the layout only, never on
timing, and every rank starts them in the same order; each element is
still the sum of the same N rank values by one reduction. With two ranks
that sum is one IEEE addition, a + b = b + a, so the result is
bit-identical to one Allreduce of the whole buffer (tests/test_mpi.py
checks it); with more ranks MPI chooses the reduction algorithm per message
size, the same on every step, but not necessarily the one a single
Allreduce of the whole buffer would use (the per-epoch CRC of the weights
still checks that the ranks agree).

Why the wait sleeps: MPICH polls while it waits in Wait/Allreduce, a full
core for as long as the partner is late; on a machine with as many cores
as ranks (or hyperthreads sharing a core) that steals from the rank being
waited for. The step's error flag is reduced with the buckets (started
after them): it completes once every rank has finished its backward pass.
The wait for it spins for ``spin_s``, then sleeps between tests, the sleep
doubling from 20 µs to ``max_sleep_s``; then every rank is present and
the buckets' transfers are polled to the end (sleeping there would slow
the transfer itself, which needs both sides).
"""

import time
from typing import Any, List, Optional, Tuple

import numpy as np

from .. import _core

__all__ = ["BucketedAllreduce", "bucket_plan"]

# 64K floats (256 KiB): the 784-400-20 model gets two buckets, its output
# layer (reduced during the encoder's backward) and the rest
BUCKET_FLOATS = 1 << 16


def bucket_plan(core: _core.VAECore, bucket_floats: Optional[int] = None
                ) -> List[Tuple[int, int, int]]:
    """[(first_layer, lo, hi), ...]: the buckets of the gradient buffer in
    the order they are reduced. Bucket k holds grads[lo:hi], the whole
    layers first_layer .. of the last bucket before it; first_layer -1 is the
    tail after the layers (empty tails are left out). bucket_floats: the
    module's BUCKET_FLOATS unless given."""
    if bucket_floats is None:
        bucket_floats = BUCKET_FLOATS
    if bucket_floats < 1:
        raise ValueError(f"bucket_floats must be at least 1, got {bucket_floats}")
    info = [core.layer_info(l) for l in range(core.n_layers)]
    end = info[-1][3] + info[-1][1]  # the last layer's b ends the layer region
    plan, hi = [], end
    for l in range(core.n_layers - 1, -1, -1):
        lo = info[l][2]  # layer l's W starts its slice; its b follows
        if hi - lo >= bucket_floats or l == 0:
            plan.append((l, lo, hi))
            hi = lo
    if core.num_params > end:
        plan.append((-1, end, core.num_params))
    return plan


class BucketedAllreduce:
    """One step's gradient exchange: ``on_layer`` as VAECore.shard_grads'
    callback, then ``finish()`` (see the module docstring). Every rank must
    call ``finish()`` once per step, also when its backward failed, so that
    every rank makes the same collectives."""

    def __init__(self, core: _core.VAECore, comm: Any, MPI: Any,
                 bucket_floats: Optional[int] = None, spin_s: float = 50e-6,
                 max_sleep_s: float = 100e-6) -> None:
        self.comm, self.MPI = comm, MPI
        self.grads = core.grads_array()  # the C buffer itself: reduced in place
        self.plan = bucket_plan(core, bucket_floats)
        self.spin_s, self.max_sleep_s = spin_s, max_sleep_s
        self.started = 0
        self.requests: List[Any] = []

    def _start_through(self, layer: int) -> None:
        """Start, in plan order, every bucket whose first layer is >= layer."""
        while self.started < len(self.plan) and self.plan[self.started][0] >= layer:
            _, lo, hi = self.plan[self.started]
            self.requests.append(self.comm.Iallreduce(self.MPI.IN_PLACE, self.grads[lo:hi],
                                                      op=self.MPI.SUM))
            self.started += 1

    def on_layer(self, layer: int) -> None:
        """Layer `layer` (and every later one) is final: start its buckets,
        and let MPI progress the ones already started."""
        self._start_through(layer)
        self.MPI.Request.Testall(self.requests)

    def finish(self, failed: bool) -> bool:
        """Start the buckets left, then this step's error flag (its MAX over
        the ranks, started after the buckets on every rank); wait for the
        flag without holding the core, then for the buckets. Returns whether
        any rank failed (its gradient is then garbage)."""
        self._start_through(-1)
        flag = np.array([1 if failed else 0], dtype=np.int32)
        arrived = self.comm.Iallreduce(self.MPI.IN_PLACE, flag, op=self.MPI.MAX)
        requests, self.requests, self.started = self.requests, [], 0
        # The flag completes once every rank has finished its backward: until
        # then a partner is still computing, and polling for it would take a
        # core it may need. Spin briefly, then sleep between tests.
        t0 = time.perf_counter()
        while not arrived.Test():
            if time.perf_counter() - t0 >= self.spin_s:
                break
        sleep = 20e-6
        while not arrived.Test():
            time.sleep(sleep)
            sleep = min(2 * sleep, self.max_sleep_s)
        # every rank is here and takes part in the transfers: poll till done
        self.MPI.Request.Waitall(requests)
        return bool(flag[0])
