"""The training loop behind :meth:`vaefast.VAE.fit`.

Each minibatch is one C call (forward, loss, backward and the optimizer
update); this module only orders the batches, tracks epochs, evaluates the
validation set, runs callbacks and draws the progress bar.

Reproducibility: the batch order of epoch e is
``np.random.default_rng([seed, e]).permutation(n)`` and the noise of step t is
the core's Philox stream at (seed, t), with e and t global counters kept by
the model. Training 2 epochs therefore equals training 1, saving, loading and
training 1 more, bit for bit.

Where the rows come from is a *source* with one method per epoch: an
in-memory array (here), a memmap or a stream of row blocks
(vaefast/_streaming.py) or this rank's shard of an MPI job
(vaefast/distributed.py). The epoch bookkeeping below is shared by all.
"""

import math
import sys
import time

import numpy as np

from . import _core
from ._source import OneProcessSource
from ._validation import as_float, as_int

__all__ = ["fit", "History"]

# Optimizer hyper-parameters not exposed by fit (PyTorch's defaults for Adam;
# SGD uses momentum 0.9).
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8
SGD_MOMENTUM = 0.9
_ROWS_PER_CALL = 8192     # at most this many training rows per C call (see fit)
_SECONDS_PER_CALL = 0.1   # and about this much time


def _next_call_steps(steps, done, seconds, most):
    """Steps for the next C call: about _SECONDS_PER_CALL at the pace just
    measured, at most `most`, growing at most 4x per call."""
    if done < 1:
        return steps
    paced = int(_SECONDS_PER_CALL * done / max(seconds, 1e-6))
    return max(1, min(most, 4 * steps, paced))


class History:
    """Per-epoch training record returned by :meth:`VAE.fit`.

    Attributes
    ----------
    history : dict of str -> list of float
        ``loss`` (mean training negative ELBO, ``recon + beta·KL``),
        ``recon``, ``kl``, ``val_loss`` (NaN without validation data) and
        ``seconds`` (wall time of the epoch), one entry per epoch.
    epochs : list of int
        Global epoch numbers (they continue across calls to ``fit``).
    stopped_early : bool
        Whether early stopping or a callback ended training.
    """

    KEYS = ("loss", "recon", "kl", "val_loss", "seconds")

    def __init__(self):
        self.history = {k: [] for k in self.KEYS}
        self.epochs = []
        self.stopped_early = False

    def _append(self, epoch, logs):
        self.epochs.append(epoch)
        for k in self.KEYS:
            self.history[k].append(float(logs[k]))

    def __len__(self):
        return len(self.epochs)

    def __repr__(self):
        lines = ["epoch        loss       recon          kl    val_loss   seconds"]
        for i, e in enumerate(self.epochs):
            h = {k: self.history[k][i] for k in self.KEYS}
            lines.append(f"{e:5d} {h['loss']:11.4f} {h['recon']:11.4f} {h['kl']:11.4f} "
                         f"{h['val_loss']:11.4f} {h['seconds']:9.3f}")
        if self.stopped_early:
            lines.append("(stopped early)")
        return "\n".join(lines)

    __str__ = __repr__




class _TinyBar:
    """A minimal stderr progress bar for when tqdm is not installed."""

    def __init__(self, total, desc):
        self.total, self.desc, self.n, self.postfix = total, desc, 0, ""
        self._last = 0.0

    def update(self, k):
        self.n += k
        now = time.perf_counter()
        if now - self._last > 0.1 or (self.total and self.n >= self.total):
            self._last = now
            self._draw()

    def _draw(self):
        if not self.total:  # a stream of unknown length: rows so far
            sys.stderr.write(f"\r{self.desc} {self.n} rows {self.postfix}")
        else:
            width = 30
            filled = min(width, int(width * self.n / self.total))
            sys.stderr.write(f"\r{self.desc} [{'#' * filled}{'.' * (width - filled)}] "
                             f"{self.n}/{self.total} {self.postfix}")
        sys.stderr.flush()

    def set_postfix_str(self, s):
        self.postfix = s

    def close(self):
        self._draw()  # the last state, which update may have skipped as too soon
        sys.stderr.write("\n")
        sys.stderr.flush()


def _make_bar(progress, total, desc):
    if progress is None:
        progress = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return _TinyBar(total, desc)
    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr)


class InMemorySource(OneProcessSource):
    """Rows of one in-memory array (with their conditions and size factors),
    shuffled exactly by (seed, epoch)."""

    def __init__(self, model, X, batch_size, c=None, size_factors=None):
        self.X = model._check_X(X, targets=True)
        self.n_rows = self.X.shape[0]
        self.c = model._check_c(c, self.n_rows)
        self.size_factors = model._check_size_factors(size_factors, self.n_rows)
        self.batch_size = min(batch_size, self.n_rows)

    def run_epoch(self, trainer, epoch, shuffle, bar):
        """Train one epoch; returns the number of rows trained on."""
        n = self.n_rows
        order = (np.random.default_rng([trainer.model.seed, epoch]).permutation(n)
                 .astype(np.int64) if shuffle else None)
        trainer.steps(self.X, order, bar, self.c, self.size_factors)
        return n


class Trainer:
    """Runs fused steps on contiguous row arrays; tracks the epoch's sums."""

    def __init__(self, model, batch_size, lr, optimizer):
        self.model, self.core = model, model._core
        self.batch_size, self.lr, self.optimizer = batch_size, lr, optimizer
        self.beta1 = ADAM_BETA1 if optimizer == "adam" else SGD_MOMENTUM
        self.epoch, self.kl_weight = 0, 1.0
        self.sums = np.zeros(3)
        self.steps_per_call = 1  # grows to the paced size (_next_call_steps)

    def start_epoch(self, epoch, kl_weight):
        self.epoch, self.kl_weight = epoch, kl_weight
        self.sums = np.zeros(3)

    def update_args(self):
        """(lr, beta1, beta2, adam_eps, weight_decay, optimizer) of the core."""
        return self.lr, self.beta1, ADAM_BETA2, ADAM_EPS, 0.0, self.optimizer

    def steps(self, X, order, bar, c=None, size_factors=None):
        """Train on all rows of X (in `order` if given), batch after batch;
        c and size_factors are X's side inputs (rows indexed like X's).

        Steps run in chunks, one C call each, so that the trip through
        Python is paid once per chunk, not once per step; a chunk takes
        about _SECONDS_PER_CALL, so Ctrl-C (handled between calls) and the
        progress bar respond within a fraction of a second, busy machine or
        not. The core advances model.step_ with the steps themselves.
        """
        model, core, batch_size = self.model, self.core, self.batch_size
        n = X.shape[0]
        n_batches = -(-n // batch_size)
        most_steps = max(1, _ROWS_PER_CALL // batch_size)
        bi = 0
        while bi < n_batches:
            k = min(self.steps_per_call, n_batches - bi)
            chunk = np.zeros(3)
            t_call = time.perf_counter()
            done, status = core.train_steps(
                X, order, batch_size, bi, k, model.seed, model.step_,
                *self.update_args()[:5], self.optimizer, self.kl_weight, chunk, c,
                size_factors)
            self.steps_per_call = _next_call_steps(self.steps_per_call, done,
                                                   time.perf_counter() - t_call, most_steps)
            rows = min(n, (bi + done) * batch_size) - bi * batch_size
            bi += done
            self.sums += chunk
            if bar is not None and rows:
                bar.update(rows)
                bar.set_postfix_str(f"loss {chunk[0] / rows:.3f}")
            self.check_status(status)

    def check_status(self, status):
        """Raise the exception for a failed step's C status."""
        if status == _core.NONFINITE_STATUS:
            raise _core.NonFiniteError(
                f"training diverged at epoch {self.epoch}, step {self.model.step_}: the "
                "loss, a gradient or the optimizer's update is NaN/Inf; the "
                "weights are left finite, at their values before this step "
                "(an update that overflows float32 is not applied to the "
                "entries it overflows) - try a smaller learning_rate")
        _core.status_error(status, f"training step {self.model.step_}")


def _make_source(model, X, batch_size, comm, buffer_rows, c, size_factors):
    if (c is not None or size_factors is not None) and comm is not None:
        raise ValueError("c= and size_factors= are not supported with comm= yet: train a "
                         "conditional or size-factor model in one process")
    if comm is not None:
        from .distributed import ShardSource

        return ShardSource(model, X, batch_size, comm)
    from . import _streaming

    if _streaming.is_stream(X):
        if c is not None or size_factors is not None:
            raise ValueError("c= and size_factors= need X in memory (not a memmap, Dask "
                             "array or stream of blocks) for now")
        return _streaming.make_source(model, X, batch_size, buffer_rows)
    if buffer_rows is not None:
        raise ValueError("buffer_rows applies only to streamed X (a memmap, a Dask "
                         "array, a sequence of arrays or a callable)")
    return InMemorySource(model, X, batch_size, c, size_factors)


def fit(model, X, epochs=10, batch_size=128, learning_rate=1e-3, optimizer="adam",
        shuffle=True, validation_data=None, early_stopping_patience=None,
        kl_warmup_epochs=0, callbacks=(), progress=None, comm=None, checkpoint=None,
        buffer_rows=None, c=None, size_factors=None):
    """Train `model` on X.

    Parameters
    ----------
    model : vaefast.VAE
    X : array_like, shape (n, n_features), or a stream of rows
        Training data (in [0, 1] for the Bernoulli likelihood). Besides an
        in-memory array: a ``numpy.memmap`` (e.g. ``np.load(path,
        mmap_mode="r")``), a Dask array, a sequence of 2-D arrays, or a
        callable returning a fresh iterator of 2-D arrays; these are read a
        buffer at a time (docs/scaling.md says which orders are exact).
        With `comm`, this rank's shard.
    epochs : int
        Epochs to run in this call (0 is allowed: nothing happens).
    batch_size : int
        Rows per step; the last batch of an epoch may be smaller. With
        `comm`, the global minibatch, split across the ranks.
    learning_rate : float
        Step size (finite, > 0).
    optimizer : {"adam", "sgd"}
        Adam (betas 0.9/0.999, eps 1e-8) or SGD with momentum 0.9. The state
        persists across calls; switching optimizer resets it.
    shuffle : bool
        Visit rows in the order ``default_rng([seed, epoch]).permutation(n)``
        (streams: see docs/scaling.md; with `comm`, each rank permutes its
        shard by ``default_rng([seed, epoch, rank])``).
    validation_data : array_like or tuple, optional
        Evaluated after every epoch: mean negative ELBO with noise seeded by
        the model's seed (the same draw every epoch). X_val, or (X_val,
        c_val) or (X_val, c_val, size_factors_val). With `comm`, the mean
        over every rank's validation rows.
    early_stopping_patience : int, optional
        Stop when the monitored loss (val_loss if validation data is given,
        else the training loss) has not improved for this many epochs, and
        restore the weights of the best epoch.
    kl_warmup_epochs : int
        Scale the KL term's gradient by min(1, (epoch + 1) / kl_warmup_epochs)
        (global epoch number); 0 disables warm-up. Reported losses always use
        the full beta.
    callbacks : sequence of callables
        Each is called as ``cb(epoch, logs)`` after every epoch, with logs the
        dict of that epoch's History entries; returning True stops training
        (with `comm`, on every rank).
    progress : bool, optional
        Show a progress bar on stderr (tqdm if installed). Default: only when
        stderr is a terminal.
    comm : mpi4py.MPI.Comm, optional
        Data-parallel training over MPI (vaefast/distributed.py): every rank
        calls fit with its shard and the same arguments.
    checkpoint : str or os.PathLike, optional
        Save the model there after every epoch (with `comm`, rank 0 only).
    buffer_rows : int, optional
        Rows read per buffer for streamed X (default: about 64 MiB).
    c : array_like, shape (n, n_conditions), optional
        The conditions (required exactly for a conditional model; in-memory
        X only, no `comm`).
    size_factors : array_like, shape (n,), optional
        Per-row factors of the mean (count likelihoods only; in-memory X
        only, no `comm`).

    Returns
    -------
    History

    Raises
    ------
    vaefast.NonFiniteError
        If a step's loss or gradient is NaN or infinite: that step is not
        applied and the weights keep their last finite values. If instead the
        optimizer's update itself overflows float32 (gradients beyond about
        1e19), the entries it would overflow keep their values and the rest
        of that step is applied; the weights are never NaN or infinite.
    RuntimeError
        If another thread is already training this model.
    vaefast.distributed.DistributedError
        With `comm`, on every rank when any rank failed.
    """
    epochs = as_int(epochs, "epochs", minimum=0)
    batch_size = as_int(batch_size, "batch_size", minimum=1)
    lr = as_float(learning_rate, "learning_rate", minimum=0.0, open_min=True)
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if buffer_rows is not None:
        buffer_rows = as_int(buffer_rows, "buffer_rows", minimum=1)
    source = _make_source(model, X, batch_size, comm, buffer_rows, c, size_factors)
    val_side = {}
    if isinstance(validation_data, tuple):
        if not 1 <= len(validation_data) <= 3:
            raise ValueError("validation_data must be X_val or a tuple (X_val, c_val[, "
                             f"size_factors_val]), got a tuple of {len(validation_data)}")
        validation_data, *rest = validation_data
        val_side = dict(zip(("c", "size_factors"), rest))
    if validation_data is not None:
        validation_data = model._check_X(validation_data, "validation_data", targets=True)
    if early_stopping_patience is not None:
        early_stopping_patience = as_int(early_stopping_patience, "early_stopping_patience",
                                         minimum=1)
    kl_warmup_epochs = as_int(kl_warmup_epochs, "kl_warmup_epochs", minimum=0)
    if callable(callbacks):
        callbacks = (callbacks,)
    callbacks = tuple(callbacks)
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(f"callbacks[{i}] must be callable, got {type(cb).__name__}")

    if comm is not None:
        source.require_same(epochs=epochs, batch_size=batch_size, learning_rate=lr,
                            optimizer=optimizer, shuffle=bool(shuffle),
                            validation=validation_data is not None,
                            patience=early_stopping_patience, kl_warmup=kl_warmup_epochs,
                            checkpoint=checkpoint is not None)
    history = History()
    core = model._core
    trainer = Trainer(model, source.batch_size, lr, optimizer)

    with model._exclusive("fit"):
        if model.optimizer_ != optimizer:
            zeros = np.zeros(core.num_params, dtype=np.float32)
            core.set_buffer(_core.MOMENT1, zeros)
            core.set_buffer(_core.MOMENT2, zeros)
            model.optimizer_ = optimizer
        core.reserve(source.batch_size)  # grow the workspace once, outside the steps
        best, best_params, since_best = math.inf, None, 0
        for _ in range(epochs):
            epoch = model.epoch_
            t0 = time.perf_counter()
            trainer.start_epoch(epoch, min(1.0, (epoch + 1) / kl_warmup_epochs)
                                if kl_warmup_epochs else 1.0)
            bar = _make_bar(progress, source.n_rows, f"epoch {epoch + 1}")
            try:
                n = source.run_epoch(trainer, epoch, shuffle, bar)
            finally:
                if bar is not None:
                    bar.close()
            model.epoch_ += 1
            source.end_epoch(model)
            val = math.nan
            if validation_data is not None:
                neg_elbo = -model.elbo(validation_data, seed=model.seed, **val_side)
                val_sum, val_n = source.total(np.array([neg_elbo.sum(), neg_elbo.size]))
                val = float(val_sum / val_n)
            sums = trainer.sums
            logs = {"loss": sums[0] / n, "recon": sums[1] / n, "kl": sums[2] / n,
                    "val_loss": val, "seconds": time.perf_counter() - t0}
            history._append(epoch, logs)
            stop = False
            for cb in callbacks:
                if cb(epoch, dict(logs)) is True:
                    stop = True
            stop = source.any(stop)
            if early_stopping_patience is not None:
                monitored = val if validation_data is not None else logs["loss"]
                if monitored < best:
                    best, best_params, since_best = monitored, core.get_buffer(_core.PARAMS), 0
                else:
                    since_best += 1
                    if since_best >= early_stopping_patience:
                        core.set_buffer(_core.PARAMS, best_params)
                        stop = True
            if checkpoint is not None and source.is_root:
                from ._serialize import save_model

                save_model(model, checkpoint)
            if stop:
                history.stopped_early = True
                break
    return history
