"""The MPI source of a data-parallel fit: this rank's shard (the contract is
vaefast/distributed.py's docstring)."""

import os
import zlib
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, cast

import numpy as np

from .. import _core, _covariate_codes as _cov, _rows
from .._internals import Internals, internals
from .._typing import F32, F64
from .overlap import BucketedAllreduce
from .shm_exchange import SharedExchange, on_one_node
from .progress import Bar
from .sources import OneProcessSource


if TYPE_CHECKING:
    from ..model import VAE
    from .loop import Trainer

__all__ = ["DistributedError", "ShardSource", "rank_batch", "shard_rows"]


class DistributedError(RuntimeError):
    """Raised on every rank of a data-parallel fit when one rank failed."""


def rank_batch(batch_size: int, size: int, rank: int) -> int:
    """Rows of a global minibatch of `batch_size` that rank `rank` of `size` takes."""
    return batch_size // size + (1 if rank < batch_size % size else 0)


def shard_rows(n: int, size: int, rank: int) -> "slice[int, int, None]":
    """The slice of rows [start, stop) of n that rank `rank` of `size` should
    pass as its shard when every rank reads the same file (contiguous,
    sizes differing by at most one)."""
    return slice(n * rank // size, n * (rank + 1) // size)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _state_crc(core: _core.VAECore) -> int:
    crc = 0
    for which in (_core.PARAMS, _core.MOMENT1, _core.MOMENT2):
        crc = zlib.crc32(core.get_buffer(which).data, crc)  # the array's memory, not a bytes copy
    return crc


class ShardSource(OneProcessSource):
    """This rank's shard of a data-parallel fit (see the module docstring)."""

    is_root = False

    def __init__(self, model: "VAE", X: object, batch_size: int, comm: Any,
                 codes: object = None) -> None:
        from mpi4py import MPI  # the caller already has it: it passed a comm

        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.is_root = self.rank == 0
        # both sides of every step's collectives must agree (checked below).
        # The exchange: through a shared-memory window when every rank is on
        # this machine (shm_exchange.py) unless VAEFAST_MPI_SHM=0; otherwise
        # one blocking Allreduce, or the overlapped buckets on request
        # (VAEFAST_MPI_OVERLAP=1, which also turns the window off: overlap.py)
        self.overlap = os.environ.get("VAEFAST_MPI_OVERLAP", "0") == "1"
        shm_asked = os.environ.get("VAEFAST_MPI_SHM", "1") != "0"
        one_node = self.size > 1 and on_one_node(comm, MPI)  # collective: every rank
        if "OMP_NUM_THREADS" not in os.environ:
            _core.set_num_threads(1)
        error: Optional[Exception] = None
        try:
            if batch_size < self.size:
                raise ValueError(f"batch_size ({batch_size}) must be at least the number "
                                 f"of ranks ({self.size}): it is the global minibatch")
            self._set_rows(internals(model), X)
            # this shard's codes (categorical covariates, θ's table rows), checked
            self.side = internals(model).check_side(None, None, self.n_rows, codes)[0]
        except Exception as exc:
            error = exc
        start = (None if error is None else _describe(error),
                 0 if error is not None else self.n_rows,
                 (self.overlap, shm_asked, one_node), _state_crc(internals(model).core),
                 model.step_, model.epoch_, model.optimizer_)
        everyone = comm.allgather(start)
        self._raise_failures(error, [e[0] for e in everyone], "checking the shards")
        for k, name in enumerate(("VAEFAST_MPI_OVERLAP", "VAEFAST_MPI_SHM")):
            if len({e[2][k] for e in everyone}) != 1:
                raise DistributedError(f"{name} differs between ranks (the exchanges "
                                       "would not match): set it alike on every rank")
        self.shm = shm_asked and not self.overlap and all(e[2][2] for e in everyone)
        if len({e[3:] for e in everyone}) != 1:
            raise DistributedError("the ranks start from different models (weights, "
                                   "optimizer state or step/epoch counters differ): build "
                                   "the model with the same arguments and seed on every "
                                   "rank, or load the same file")
        self.shard_sizes = np.array([e[1] for e in everyone], dtype=np.int64)
        self.rank_batches = np.array([rank_batch(batch_size, self.size, r)
                                      for r in range(self.size)], dtype=np.int64)
        self.batch_size = int(self.rank_batches[self.rank])
        self.n_steps = int(np.max(-(-self.shard_sizes // self.rank_batches)))

    def _set_rows(self, inner: Internals, X: Any) -> None:
        self.take: Callable[[Any], F32]
        """self.take(rows) -> this shard's rows as a contiguous float32 batch."""
        if isinstance(X, _rows.Rows):  # sparse / backed: only a batch made dense
            take = inner.check_rows(X).take
            self.take = lambda rows: inner.check_X(take(rows))
        else:
            X = inner.check_X(X)
            self.take = lambda rows: np.ascontiguousarray(X[rows])
        self.n_rows = X.shape[0]

    # ---- agreement between ranks
    def require_same(self, **settings: object) -> None:
        """Refuse (on every rank) fit arguments that differ between ranks:
        they decide how many collectives each rank makes."""
        everyone = self.comm.allgather(sorted(settings.items()))
        differing = [k for k, v in everyone[0] if any(dict(e)[k] != v for e in everyone)]
        if differing:
            raise DistributedError(f"fit arguments differ between ranks: {differing}; "
                                   "pass the same ones on every rank")

    def _raise_failures(self, error: Optional[BaseException], messages: Sequence[Optional[str]],
                        what: str) -> None:
        failed = [(r, m) for r, m in enumerate(messages) if m is not None]
        if not failed:
            return
        if error is not None:
            raise error
        r, m = failed[0]
        raise DistributedError(f"rank {r} failed while {what} ({m}); every rank stops")

    def _agree(self, error: Optional[BaseException], what: str,
               any_failed: Optional[bool] = None) -> None:
        """One Allreduce of an error flag (unless any_failed is that result
        already); raise on every rank if any failed."""
        if any_failed is None:
            flag = np.array([0 if error is None else 1], dtype=np.int32)
            self.comm.Allreduce(self.MPI.IN_PLACE, flag, op=self.MPI.MAX)
            any_failed = bool(flag[0])
        if any_failed:
            messages = self.comm.allgather(None if error is None else _describe(error))
            self._raise_failures(error, messages, what)

    def total(self, values: F64) -> F64:
        values = np.ascontiguousarray(values, dtype=np.float64)
        out = np.empty_like(values)
        self.comm.Allreduce(values, out, op=self.MPI.SUM)
        return out

    def any(self, flag: object) -> bool:
        return bool(self.comm.allreduce(bool(flag), op=self.MPI.LOR))

    def end_epoch(self, model: "VAE") -> None:
        crcs = self.comm.allgather(_state_crc(internals(model).core))
        if len(set(crcs)) != 1:
            raise DistributedError(f"the ranks' weights differ after epoch {model.epoch_ - 1} "
                                   f"(CRCs {crcs}): the replicas have diverged")

    # ---- one epoch
    def step_rows(self, step: int) -> "np.ndarray[Any, np.dtype[np.int64]]":
        """Rows every rank trains on at step `step` of an epoch."""
        start = step * self.rank_batches
        return cast("np.ndarray[Any, np.dtype[np.int64]]",
                    np.clip(self.shard_sizes - start, 0, self.rank_batches))

    def run_epoch(self, trainer: "Trainer", epoch: int, shuffle: bool,
                  bar: Optional[Bar]) -> int:
        model, core = trainer.model, trainer.core
        order = (np.random.default_rng([model.seed, epoch, self.rank]).permutation(self.n_rows)
                 if shuffle else None)
        grads = core.grads_array()  # the model's own buffer: the Allreduce's, in place
        # the exchange: shared memory, overlapped buckets or one Allreduce
        exchange = self._open_window(core)
        reducer = BucketedAllreduce(core, self.comm, self.MPI) if self.overlap else None
        sums, local = np.zeros(3), np.zeros(3)
        try:
            self._steps(trainer, exchange, reducer, grads, order, sums, local, bar)
        finally:  # every rank, failed step or not (the failure was agreed)
            if exchange is not None:
                exchange.close()
        trainer.sums = self.total(sums)
        return int(self.shard_sizes.sum())

    def _open_window(self, core: _core.VAECore) -> Optional[SharedExchange]:
        """The shared-memory exchange of this epoch, or None for the
        Allreduce paths (not asked for, ranks on several machines, or the
        window could not be allocated on some rank)."""
        if not self.shm:
            return None
        exchange: Optional[SharedExchange] = None
        try:  # a collective allocation: it fails on every rank or on none
            exchange = SharedExchange(core, self.comm, self.MPI)
        except Exception:  # e.g. no shared memory for the window: the Allreduce
            pass
        if self.comm.allreduce(exchange is not None and exchange.mapped, op=self.MPI.LAND):
            return exchange
        if exchange is not None:
            exchange.close(gather=False)
        self.shm = False  # the rest of this fit takes the Allreduce
        return None

    def _steps(self, trainer: "Trainer", exchange: Optional[SharedExchange],
               reducer: Optional[BucketedAllreduce], grads: F32, order: Any, sums: F64,
               local: F64, bar: Optional[Bar]) -> None:
        model, core, MPI = trainer.model, trainer.core, self.MPI
        n, b = self.n_rows, self.batch_size
        for s in range(self.n_steps):
            rows = self.step_rows(s)
            lo, hi = min(n, s * b), min(n, s * b + b)
            error: Optional[Exception] = None
            try:
                take = order[lo:hi] if order is not None else slice(lo, hi)
                status = core.shard_grads(self.take(take), model.seed,
                                          model.step_, int(rows[:self.rank].sum()),
                                          int(rows.sum()), trainer.kl_weight, local,
                                          trainer.precision,
                                          None if reducer is None else reducer.on_layer,
                                          c=_cov.take(self.side, take))
                trainer.check_status(status)
            except Exception as exc:
                error = exc
            what = f"computing the gradient of step {model.step_}"
            # every rank, failed or not: the same collectives
            if exchange is not None:
                self._agree(error, what, exchange.reduce(error is not None))
                status = exchange.update(model.step_, *trainer.update_args())
            else:
                if reducer is not None:
                    self._agree(error, what, reducer.finish(error is not None))
                else:
                    self._agree(error, what)
                    self.comm.Allreduce(MPI.IN_PLACE, grads, op=MPI.SUM)
                status = core.apply_update(model.step_, *trainer.update_args())
            trainer.check_status(status)
            model.step_ += 1
            sums += local
            if bar is not None and hi > lo:
                bar.update(hi - lo)
