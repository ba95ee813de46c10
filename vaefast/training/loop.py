"""The training loop behind :meth:`vaefast.VAE.fit`.

Each minibatch is one C call (forward, loss, backward and the optimizer
update); this module only orders the batches, tracks epochs, evaluates the
validation set, runs callbacks and stops early. Where the rows come from is
a source (sources.py, streaming.py, data_parallel.py).

Reproducibility: the batch order of epoch e is
``np.random.default_rng([seed, e]).permutation(n)`` and the noise of step t is
the core's Philox stream at (seed, t), with e and t global counters kept by
the model.
"""

import math
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

import numpy as np

from .. import _precision
from .._internals import MOMENT1, MOMENT2, PARAMS, internals
from .._core import NONFINITE_STATUS, NonFiniteError, status_error
from .history import History
from .progress import Bar, make_bar
from .._internals import Internals
from .._sparse_batch import CSRBatch
from .._typing import F32, F64, I64

if TYPE_CHECKING:
    from .._covariate_codes import Side
    from ..model import VAE
    from .sources import Source

# X_val (checked) or None, and its side inputs (c, size_factors) by keyword
Validation = tuple[Optional[F32], Mapping[str, Any]]

# Optimizer hyper-parameters not exposed by fit (PyTorch's defaults for Adam;
# SGD uses momentum 0.9).
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8
SGD_MOMENTUM = 0.9
_ROWS_PER_CALL = 8192     # at most this many training rows per C call (see Trainer.steps)
_SECONDS_PER_CALL = 0.1   # and about this much time


def _next_call_steps(steps: int, done: int, seconds: float, most: int) -> int:
    """Steps for the next C call: about _SECONDS_PER_CALL at the pace just
    measured, at most `most`, growing at most 4x per call."""
    if done < 1:
        return steps
    paced = int(_SECONDS_PER_CALL * done / max(seconds, 1e-6))
    return max(1, min(most, 4 * steps, paced))


class Trainer:
    """Runs fused steps on contiguous row arrays; tracks the epoch's sums."""

    def __init__(self, model: "VAE", batch_size: int, lr: float, optimizer: str) -> None:
        self.model, self.core = model, internals(model).core
        self.batch_size, self.lr, self.optimizer = batch_size, lr, optimizer
        self.beta1 = ADAM_BETA1 if optimizer == "adam" else SGD_MOMENTUM
        self.epoch, self.kl_weight = 0, 1.0
        self.sums = np.zeros(3)
        self.steps_per_call = 1  # grows to the paced size (_next_call_steps)
        self.precision = 0  # the core's code of fit's precision (vaefast/_precision.py)

    def start_epoch(self, epoch: int, kl_weight: float) -> None:
        self.epoch, self.kl_weight = epoch, kl_weight
        self.sums = np.zeros(3)

    def update_args(self) -> tuple[float, float, float, float, float, str]:
        """(lr, beta1, beta2, adam_eps, weight_decay, optimizer) of the core."""
        return self.lr, self.beta1, ADAM_BETA2, ADAM_EPS, 0.0, self.optimizer

    def steps(self, X: Optional[F32], order: Optional[I64], bar: Optional[Bar],
              c: "Side" = None, size_factors: Optional[F32] = None,
              csr: "Optional[CSRBatch]" = None) -> None:
        """Train on all rows of X (in `order` if given), batch after batch;
        c (with codes, the pair (c, codes)) and size_factors are X's side
        inputs (rows indexed like X's), csr
        X's rows in CSR form for the first layer. X None: csr's rows are
        the data, each batch gathered (in `order`) and made dense in C.

        Steps run in chunks, one C call each, so that the trip through
        Python is paid once per chunk, not once per step; a chunk takes
        about _SECONDS_PER_CALL, so Ctrl-C (handled between calls) and the
        progress bar respond within a fraction of a second, busy machine or
        not. The core advances model.step_ with the steps themselves.
        """
        model, core, batch_size = self.model, self.core, self.batch_size
        if X is not None:
            n = X.shape[0]
        else:
            assert csr is not None  # the source gives one or the other
            n = csr.shape[0]
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
                size_factors, csr, self.precision)
            self.steps_per_call = _next_call_steps(self.steps_per_call, done,
                                                   time.perf_counter() - t_call, most_steps)
            rows = min(n, (bi + done) * batch_size) - bi * batch_size
            bi += done
            self.sums += chunk
            if bar is not None and rows:
                bar.update(rows)
                bar.set_postfix_str(f"loss {chunk[0] / rows:.3f}")
            self.check_status(status)

    def check_status(self, status: int) -> None:
        """Raise the exception for a failed step's C status."""
        if status == NONFINITE_STATUS:
            raise NonFiniteError(
                f"training diverged at epoch {self.epoch}, step {self.model.step_}: the "
                "loss, a gradient or the optimizer's update is NaN/Inf; the "
                "weights are left finite, at their values before this step "
                "(an update that overflows float32 is not applied to the "
                "entries it overflows) - try a smaller learning_rate")
        status_error(status, f"training step {self.model.step_}")


class _EarlyStopping:
    """Tracks the monitored loss; restores the best weights when patience runs out."""

    def __init__(self, inner: Internals, patience: Optional[int]) -> None:
        self.inner, self.patience = inner, patience
        self.best_params: Optional[F32] = None
        self.best, self.since_best = math.inf, 0

    def should_stop(self, monitored: float) -> bool:
        if self.patience is None:
            return False
        if monitored < self.best:
            self.best, self.best_params = monitored, self.inner.get_buffer(PARAMS)
            self.since_best = 0
            return False
        self.since_best += 1
        if self.since_best < self.patience:
            return False
        assert self.best_params is not None  # set by the first finite loss
        self.inner.set_buffer(PARAMS, self.best_params)
        return True


def _reset_optimizer_if_switched(model: "VAE", inner: Internals, optimizer: str) -> None:
    """Switching optimizer starts its moment buffers from zero."""
    if model.optimizer_ != optimizer:
        zeros = np.zeros(inner.num_params, dtype=np.float32)
        inner.set_buffer(MOMENT1, zeros)
        inner.set_buffer(MOMENT2, zeros)
        model.optimizer_ = optimizer


def _kl_weight(epoch: int, warmup_epochs: int) -> float:
    return min(1.0, (epoch + 1) / warmup_epochs) if warmup_epochs else 1.0


def _train_epoch(source: "Source", trainer: Trainer, epoch: int, o: Mapping[str, Any]) -> int:
    """One epoch over the source, with its progress bar; returns the rows."""
    trainer.start_epoch(epoch, _kl_weight(epoch, o["kl_warmup_epochs"]))
    bar = make_bar(o["progress"], source.n_rows, f"epoch {epoch + 1}")
    try:
        return source.run_epoch(trainer, epoch, o["shuffle"], bar)
    finally:
        if bar is not None:
            bar.close()


def _validation_loss(model: "VAE", source: "Source", validation: Validation) -> float:
    """Mean negative ELBO over every process's validation rows, or NaN."""
    X_val, side = validation
    if X_val is None:
        return math.nan
    neg_elbo = -model.elbo(X_val, seed=model.seed, **side)
    val_sum, val_n = source.total(np.array([neg_elbo.sum(), neg_elbo.size]))
    return float(val_sum / val_n)


def _callbacks_stop(callbacks: Sequence[Callable[[int, dict[str, float]], object]], epoch: int,
                    logs: Mapping[str, float]) -> bool:
    stop = False
    for cb in callbacks:
        if cb(epoch, dict(logs)) is True:
            stop = True  # every callback still runs
    return stop


def run(model: "VAE", source: "Source", o: Mapping[str, Any],
        validation: Validation) -> History:
    """Run o["epochs"] epochs of `model` over `source` (options `o` checked
    by vaefast/_fit_options.py; validation = (X_val or None, side inputs)).
    Returns the History."""
    inner = internals(model)
    history = History()
    trainer = Trainer(model, source.batch_size, o["learning_rate"], o["optimizer"])
    trainer.precision = _precision.code(model.precision, o["precision"])
    early = _EarlyStopping(inner, o["early_stopping_patience"])
    with inner.exclusive("fit"):
        _reset_optimizer_if_switched(model, inner, o["optimizer"])
        inner.core.reserve(source.batch_size)  # grow the workspace once, outside the steps
        for _ in range(o["epochs"]):
            epoch = model.epoch_
            t0 = time.perf_counter()
            n = _train_epoch(source, trainer, epoch, o)
            model.epoch_ += 1
            source.end_epoch(model)
            val = _validation_loss(model, source, validation)
            sums = trainer.sums
            logs = {"loss": sums[0] / n, "recon": sums[1] / n, "kl": sums[2] / n,
                    "val_loss": val, "seconds": time.perf_counter() - t0}
            history._append(epoch, logs)
            stop = source.any(_callbacks_stop(o["callbacks"], epoch, logs))
            if early.should_stop(val if validation[0] is not None else logs["loss"]):
                stop = True
            if o["checkpoint"] is not None and source.is_root:
                from ..io.serialize import save_model

                save_model(model, o["checkpoint"])
            if stop:
                history.stopped_early = True
                break
    return history
