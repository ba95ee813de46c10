"""Streaming sources for fit: training data read one buffer at a time.

Two kinds of stream, so that memory is bounded by the buffer, not the data:

* **Random access** (a ``numpy.memmap``, e.g. ``np.load(path,
  mmap_mode="r")``, or a sparse, backed or AnnData matrix, gathered through
  vaefast/_rows.py one batch at a time by default): the epoch's order is the in-memory one,
  ``default_rng([seed, epoch]).permutation(n)``; the rows of the next
  ``buffer_rows`` positions of that order are gathered into a buffer and
  trained on. The batches are the in-memory batches, so the weights are
  bit-identical to fitting the same array in memory.
* **Row blocks read once per epoch** (a sequence of 2-D arrays, a Dask array,
  or a callable returning a fresh iterator of 2-D arrays): blocks are read in
  turn and their rows fill a buffer of ``buffer_rows`` rows (a multiple of the
  batch size). With ``shuffle=False`` the batches are the in-memory batches of
  the concatenated blocks (exact). With ``shuffle=True`` the order is exact
  when the epoch's rows fit one buffer (then it is the in-memory permutation
  of the concatenation); otherwise it is approximate: the block order is
  permuted by ``default_rng([seed, epoch])`` when the blocks are addressable
  (sequence, Dask array; a callable's order is its own), and buffer k is
  visited in the order ``default_rng([seed, epoch, k]).permutation``.

A helper thread reads the next buffer while the C core trains on the current
one (the GIL is released during training), so reading costs little time.
"""

import queue
import threading
from typing import (TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Sequence,
                    TypeVar, Union, cast)

import numpy as np

from .._arrays import is_dask_array as _is_dask_array
from .._arrays import row_chunked as _row_chunked
from .._covariate_codes import take
from .._internals import Internals, internals
from .._rows import Rows
from .._sparse_batch import CSRBatch, gather_dense_rows
from .._typing import F32, I64
from .progress import Bar
from .sources import OneProcessSource

if TYPE_CHECKING:
    from ..model import VAE
    from .loop import Trainer

_T = TypeVar("_T")
# Block indices in reading order -> the blocks (2-D arrays) in that order
ReadBlocks = Callable[[Iterable[int]], Iterator[Any]]

__all__ = ["is_stream", "make_source", "DEFAULT_BUFFER_BYTES"]

DEFAULT_BUFFER_BYTES = 64 << 20  # per buffer; at most four are alive at once


def _is_block_sequence(X: object) -> bool:
    return (isinstance(X, (list, tuple)) and len(X) > 0
            and all(isinstance(b, np.ndarray) and b.ndim == 2 for b in X))


def is_stream(X: object) -> bool:
    """Whether fit reads X a buffer at a time (see the module docstring)."""
    return (isinstance(X, np.memmap) or _is_dask_array(X) or _is_block_sequence(X)
            or (callable(X) and not isinstance(X, np.ndarray)))


def buffer_size(buffer_rows: Optional[int], batch_size: int, n_features: int) -> int:
    """Rows per buffer: a multiple of batch_size, about DEFAULT_BUFFER_BYTES."""
    if buffer_rows is None:
        buffer_rows = DEFAULT_BUFFER_BYTES // (4 * n_features)
    return max(1, buffer_rows // batch_size) * batch_size


def make_source(model: "VAE", X: Any, batch_size: int,
                buffer_rows: Optional[int]) -> Union["RandomAccessSource", "BlockSource"]:
    """The source object fit uses for a streamed X."""
    if isinstance(X, np.memmap):
        return RandomAccessSource(model, X, batch_size, buffer_rows)
    if _is_dask_array(X):
        return BlockSource(model, *_dask_blocks(model, X), batch_size, buffer_rows)
    if _is_block_sequence(X):
        return BlockSource(model, len(X), lambda order: (X[i] for i in order),
                           sum(b.shape[0] for b in X), batch_size, buffer_rows)
    return BlockSource(model, None, lambda order: _fresh_iterator(X), None, batch_size,
                       buffer_rows)


def _fresh_iterator(X: Callable[[], Any]) -> Iterator[Any]:
    it = X()
    if it is X or not hasattr(it, "__next__") and not hasattr(it, "__iter__"):
        raise TypeError("X: a callable must return a fresh iterator of 2-D arrays, got "
                        f"{type(it).__name__}")
    return iter(it)


def _dask_blocks(model: "VAE", X: Any) -> tuple[int, ReadBlocks, int]:
    X = _row_chunked(X, model.n_features, "X")
    return (X.numblocks[0], lambda order: (X.blocks[i].compute() for i in order),
            X.shape[0])


def _prefetched(produce: Callable[[], Iterable[_T]]) -> Iterator[_T]:
    """Iterate the generator produce() one item ahead, in a helper thread."""
    q: "queue.Queue[tuple[str, Any]]" = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def run() -> None:
        try:
            for item in produce():
                if not put(("item", item)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the consumer, raised there
            put(("error", exc))

    thread = threading.Thread(target=run, name="vaefast-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class RandomAccessSource(OneProcessSource):
    """Random-access rows (a memmap, or a sparse / backed matrix read through
    vaefast/_rows.py): the exact in-memory order, gathered buffer by buffer,
    with the conditions and size factors of those rows.

    Sparse rows (in memory or a backed .h5ad) are read a buffer of many
    batches at a time (about DEFAULT_BUFFER_BYTES of stored entries: one
    read per buffer, its rows in increasing order) and stay CSR: with the
    CSR first layer the buffer goes to the core whole with the positions of
    the epoch's order in it, and the core gathers each batch and makes it
    dense as the loss's targets (csrc/vae_csr_steps.c). Otherwise (a
    conditional model, whose first layer takes x and c concatenated, or
    sparse_first_layer=False) the first layer needs the dense batch, and
    each batch alone is made dense here (_dense_batch)."""

    def __init__(self, model: "VAE", X: Any, batch_size: int, buffer_rows: Optional[int],
                 c: object = None, size_factors: object = None,
                 sparse_first_layer: bool = False, codes: object = None) -> None:
        inner = internals(model)
        self.take: Callable[[Any], Any]
        self.rows: Optional[Rows] = None  # sparse rows, read as CSR buffers
        self.csr_core = False  # the core takes the CSR rows (first layer and targets)
        self.whole = False  # the core gathers the batches from X's arrays
        if isinstance(X, np.memmap):
            if X.ndim != 2:
                raise ValueError(f"X must be 2-dimensional, got shape {X.shape}")
            if X.shape[1] != model.n_features:
                raise ValueError(f"X must have {model.n_features} columns (n_features), "
                                 f"got {X.shape[1]}")
            if X.shape[0] == 0:
                raise ValueError(f"X must not be empty, got shape {X.shape}")
            self.take = lambda rows: np.asarray(X[rows])
            default_rows = buffer_rows
        else:  # Rows: sparse ones a buffer of CSR rows at a time, dense ones a batch
            self.take = inner.check_rows(X).take
            default_rows = batch_size if buffer_rows is None else buffer_rows
            if X.sparse:
                self.rows = X
                self.csr_core = sparse_first_layer and model.n_conditions == 0
                self.whole = self.csr_core and buffer_rows is None and _whole_in_core(X)
                if buffer_rows is None:  # entries of value (4 bytes) and index (4)
                    default_rows = int(DEFAULT_BUFFER_BYTES // (8 * X.mean_row_entries))
        self.model = model
        self.n_rows: int = X.shape[0]
        self.c, self.size_factors = inner.check_side(c, size_factors, self.n_rows, codes)
        self.batch_size = min(batch_size, self.n_rows)
        self.buffer_rows = buffer_size(default_rows, self.batch_size, model.n_features)

    def _buffers(self, order: Optional[I64]) -> Iterator[tuple[F32, list[Any]]]:
        """Dense buffers of rows (a memmap's, or a dense backed matrix's)."""
        R, n = self.buffer_rows, self.n_rows
        for start in range(0, n, R):
            rows = order[start:start + R] if order is not None else slice(start, start + R)
            buf = internals(self.model).check_X(self.take(rows), f"X rows {start}..")
            yield buf, [take(a, rows) for a in (self.c, self.size_factors)]

    def _csr_buffers(self, order: Optional[I64]
                     ) -> Iterator[tuple[CSRBatch, Optional[I64], list[Any]]]:
        """(CSR rows of a buffer in increasing order, the positions in it of
        the buffer's rows in the epoch's order (None: in order), their side
        inputs indexed like the CSR rows), checked."""
        assert self.rows is not None
        R, n = self.buffer_rows, self.n_rows
        inner = internals(self.model)
        for start in range(0, n, R):
            rows = order[start:start + R] if order is not None else slice(start, start + R)
            csr, pos = self.rows.take_csr_sorted(rows)
            if not self.rows.in_memory:  # an in-memory matrix was checked whole
                inner.check_csr_rows(csr, f"X rows {start}..")
            read = rows if pos is None or isinstance(rows, slice) else np.sort(rows)
            yield csr, pos, [take(a, read) for a in (self.c, self.size_factors)]

    def run_epoch(self, trainer: "Trainer", epoch: int, shuffle: bool,
                  bar: Optional[Bar]) -> int:
        order = (np.random.default_rng([self.model.seed, epoch]).permutation(self.n_rows)
                 if shuffle else None)
        if self.whole:  # the core gathers each batch (csrc/vae_csr_steps.c)
            assert self.rows is not None
            matrix = self.rows.take_csr(slice(0, self.n_rows))
            trainer.steps(None, order, bar, self.c, self.size_factors, matrix)
            return self.n_rows
        if self.rows is None:
            for buf, (c, s) in _prefetched(lambda: self._buffers(order)):
                trainer.steps(buf, None, bar, c, s)
            return self.n_rows
        for csr, pos, (c, s) in _prefetched(lambda: self._csr_buffers(order)):
            if self.csr_core:
                trainer.steps(None, pos, bar, c, s, csr)
                continue
            B = self.batch_size
            for b in range(0, csr.shape[0], B):
                sel = slice(b, b + B) if pos is None else pos[b:b + B]
                trainer.steps(_dense_batch(csr, sel), None, bar, take(c, sel),
                              cast(Optional[F32], take(s, sel)))  # size factors: an array
        return self.n_rows


def _dense_batch(csr: CSRBatch, sel: "slice | I64") -> F32:
    """Rows `sel` of a CSR buffer made dense: one batch, for a first layer
    that takes the dense batch (conditional models, sparse_first_layer=False)."""
    return gather_dense_rows(csr, sel)


def _whole_in_core(X: Any) -> bool:
    """Whether the core can gather fit's batches from X's own arrays: an
    in-memory CSR matrix (checked whole when fit began) with float32 values,
    int32 column indices sorted within each row, so that the whole matrix is
    a view (take_csr of all rows), never a copy of its entries."""
    m = X.matrix
    return (X.in_memory and X.sorted_rows and getattr(m, "format", None) == "csr"
            and getattr(m.data, "dtype", None) == np.float32
            and getattr(m.indices, "dtype", None) == np.int32)


class BlockSource(OneProcessSource):
    """Row blocks read once per epoch through a bounded buffer."""

    def __init__(self, model: "VAE", n_blocks: Optional[int], read_blocks: ReadBlocks,
                 n_rows: Optional[int], batch_size: int, buffer_rows: Optional[int]) -> None:
        self.model = model
        self.n_blocks, self.read_blocks, self.n_rows = n_blocks, read_blocks, n_rows
        self.batch_size = batch_size if n_rows is None else min(batch_size, max(n_rows, 1))
        self.buffer_rows = buffer_size(buffer_rows, self.batch_size, model.n_features)

    def _buffers(self, block_order: Iterable[int]) -> Iterator[F32]:
        R, D = self.buffer_rows, self.model.n_features
        buf, fill = np.empty((R, D), np.float32), 0
        for i, block in enumerate(self.read_blocks(block_order)):
            block = internals(self.model).check_X(block, f"X block {i}")  # -> F32
            pos = 0
            while pos < block.shape[0]:
                take = min(R - fill, block.shape[0] - pos)
                buf[fill:fill + take] = block[pos:pos + take]
                fill, pos = fill + take, pos + take
                if fill == R:
                    yield buf
                    buf, fill = np.empty((R, D), np.float32), 0
        if fill:
            yield buf[:fill]

    def run_epoch(self, trainer: "Trainer", epoch: int, shuffle: bool,
                  bar: Optional[Bar]) -> int:
        seed = self.model.seed
        fits_one = self.n_rows is not None and self.n_rows <= self.buffer_rows
        block_order: "Sequence[int] | I64" = range(self.n_blocks or 0)
        if shuffle and self.n_blocks and not fits_one:
            block_order = np.random.default_rng([seed, epoch]).permutation(self.n_blocks)
        rows, k = 0, 0
        held: Optional[F32] = None
        # One buffer of look-ahead: only at the end is it known whether the
        # epoch fitted one buffer (then its order is the exact in-memory one).
        for buf in _prefetched(lambda: self._buffers(block_order)):
            if held is not None:
                rows += self._train(trainer, held, epoch, k, shuffle, False, bar)
                k += 1
            held = buf
        if held is None:
            raise ValueError("X: the stream of row blocks is empty")
        rows += self._train(trainer, held, epoch, k, shuffle, k == 0, bar)
        self.n_rows = rows
        return rows

    def _train(self, trainer: "Trainer", buf: F32, epoch: int, k: int, shuffle: bool,
               only: bool, bar: Optional[Bar]) -> int:
        order: Optional[I64] = None

        if shuffle:
            key = [self.model.seed, epoch] if only else [self.model.seed, epoch, k]
            order = np.random.default_rng(key).permutation(buf.shape[0]).astype(np.int64)
        trainer.steps(buf, order, bar)
        return int(buf.shape[0])
