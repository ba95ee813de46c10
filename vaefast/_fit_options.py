"""The options of :meth:`VAE.fit`, declared once: name, default, constraint
and documentation of each, in one table (in the spirit of scikit-learn's
``_parameter_constraints``).

The table gives VAE.fit its signature and docstring (`declare`) and checks
the arguments once (`validate`); vaefast/training/ receives them checked.
Arguments that need the model (X, c, size_factors, validation_data) are
checked by the training sources against it.
"""

import inspect
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

_Fit = TypeVar("_Fit", bound=Callable[..., Any])
_Check = Callable[[Any, str], Any]

from ._precision import check as _precision_name
from ._validation import as_float, as_int

OPTIMIZERS = ("adam", "sgd")


# ---------------------------------------------------------------- constraints
# Each takes (value, name) and returns the checked value or raises naming it.
def _any(value: object, name: str) -> object:
    return value


def _int_at_least(minimum: int, optional: bool = False) -> _Check:
    def check(value: object, name: str) -> Optional[int]:
        if optional and value is None:
            return None
        return as_int(value, name, minimum=minimum)
    return check


def _positive_float(value: object, name: str) -> float:
    return as_float(value, name, minimum=0.0, open_min=True)


def _optimizer(value: object, name: str) -> str:
    if value not in OPTIMIZERS:
        raise ValueError(f"{name} must be 'adam' or 'sgd', got {value!r}")
    return str(value)


def _callbacks(value: Any, name: str) -> tuple[Callable[..., Any], ...]:
    callbacks: tuple[Any, ...] = (value,) if callable(value) else tuple(value)
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(f"{name}[{i}] must be callable, got {type(cb).__name__}")
    return callbacks


def _validation_data(value: object, name: str) -> tuple[object, dict[str, object]]:
    """X_val, or (X_val, c_val[, size_factors_val[, codes_val]]) -> (X_val,
    {side inputs})."""
    side: dict[str, object] = {}
    if isinstance(value, tuple):
        if not 1 <= len(value) <= 4:
            raise ValueError(f"{name} must be X_val or a tuple (X_val, c_val[, "
                             f"size_factors_val[, codes_val]]), got a tuple of {len(value)}")
        value, *rest = value
        side = dict(zip(("c", "size_factors", "codes"), rest))
    return value, side


def _optional_str(value: object, name: str) -> Optional[str]:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, got {type(value).__name__}")
    return value


def _precision(value: object, name: str) -> Optional[str]:
    return None if value is None else _precision_name(value, name)


def _communicator(value: object, name: str) -> object:
    """An mpi4py communicator. mpi4py is not imported here: whoever holds a
    communicator has imported it already."""
    if value is None:
        return None
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not isinstance(value, mpi.Comm):
        raise TypeError(f"{name} must be an mpi4py communicator (mpi4py.MPI.Comm), "
                        f"got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    check: _Check
    doc: str


OPTIONS = (
    Option("epochs", 10, _int_at_least(0), """int, >= 0
        Epochs to run in this call (0: nothing happens)."""),
    Option("batch_size", 128, _int_at_least(1), """int, >= 1
        Rows per step; the last batch of an epoch may be smaller. With
        `comm`, the global minibatch, split across the ranks."""),
    Option("learning_rate", 1e-3, _positive_float, """float, > 0
        Step size."""),
    Option("optimizer", "adam", _optimizer, """{"adam", "sgd"}
        Adam (betas 0.9/0.999, eps 1e-8) or SGD with momentum 0.9. The state
        persists across calls; switching optimizer resets it."""),
    Option("shuffle", True, lambda v, n: bool(v), """bool
        Visit rows in the order ``default_rng([seed, epoch]).permutation(n)``,
        so runs are reproducible and resumable (streams: see docs/scaling.md;
        with `comm`, each rank permutes its shard by
        ``default_rng([seed, epoch, rank])``)."""),
    Option("validation_data", None, _validation_data, """array_like or tuple, optional
        Evaluated after every epoch: mean negative ELBO with noise seeded by
        the model's seed (the same draw every epoch). X_val, or (X_val,
        c_val) or (X_val, c_val, size_factors_val) or (X_val, c_val,
        size_factors_val, codes_val) (None where the model has none). With `comm`, the mean over every rank's
        validation rows."""),
    Option("early_stopping_patience", None, _int_at_least(1, optional=True), """int, optional
        Stop when the monitored loss (val_loss with validation data, else
        the training loss) has not improved for this many epochs, and
        restore the weights of the best epoch."""),
    Option("kl_warmup_epochs", 0, _int_at_least(0), """int, >= 0
        Scale the KL term's gradient by min(1, (epoch + 1) / kl_warmup_epochs)
        (global epoch number); 0 disables warm-up. Reported losses always
        use the full beta."""),
    Option("callbacks", (), _callbacks, """callable or sequence of callables
        Each is called as ``cb(epoch, logs)`` after every epoch, with logs
        the dict of that epoch's History entries; returning True stops
        training (with `comm`, on every rank)."""),
    Option("progress", None, _any, """bool, optional
        Show a progress bar on stderr (tqdm if installed). Default: only
        when stderr is a terminal."""),
    Option("c", None, _any, """array_like, shape (n, n_conditions), optional
        The conditions of X's rows: required exactly when n_conditions > 0
        (in-memory X only, no `comm`)."""),
    Option("size_factors", None, _any, """array_like, shape (n,), optional
        Count likelihoods: per-row factors > 0 of the mean (library size;
        in-memory X only, no `comm`)."""),
    Option("comm", None, _communicator, """mpi4py.MPI.Comm, optional
        Data-parallel training over MPI: every rank calls fit with its
        shard as X and the same arguments (docs/scaling.md)."""),
    Option("checkpoint", None, _any, """str or os.PathLike, optional
        Save the model there after every epoch (with `comm`, rank 0 only)."""),
    Option("buffer_rows", None, _int_at_least(1, optional=True), """int, optional
        Rows read per buffer for streamed X, rounded down to a multiple of
        batch_size (default: about 64 MiB of dense rows; for sparse, backed
        and AnnData X about 64 MiB of stored entries, read at once and
        kept CSR; one batch for a dense backed matrix)."""),
    Option("sparse_first_layer", True, lambda v, n: bool(v), """bool
        With sparse X (scipy, a sparse AnnData matrix, backed or not) and an
        unconditional model (categorical covariates allowed): run the first encoder layer's forward and
        weight gradient on the batch's stored entries (CSR kernels) instead
        of the dense batch: faster on mostly-zero data, equal to the dense
        fit up to float32 rounding (docs/single-cell.md). False: the dense
        batch, bit-identical to the fit on the dense array."""),
    Option("layer", None, _optional_str, """str, optional
        With an AnnData X: train on ``X.layers[layer]`` instead of ``X.X``
        (validation_data, if an AnnData, is read from the same layer)."""),
    Option("precision", None, _precision, """{"fp32", "bf16"}, optional
        The layers' GEMMs of this call's steps: float32, or bf16 operands
        with float32 accumulation and float32 master weights, Adam state,
        biases, losses and KL (docs/precision.md). Default: the model's
        ``precision``. The CSR first layer (sparse_first_layer) stays
        float32."""),
    Option("codes", None, _any, """array_like of int, shape (n, K), optional
        The categorical covariates of X's rows, one code per covariate:
        required exactly when the model has K > 0 (``categorical_covariates``;
        in-memory, sparse or AnnData X; with `comm`, this rank's shard's
        codes)."""),
)

_DOC = """Train with minibatches (one C call per step, the GIL released).

Calling fit again continues training: the step and epoch counters and the
optimizer state persist. Reproducibility: the batch order of epoch e and the
noise of step t are functions of (seed, e) and (seed, t), so training 2
epochs equals training 1, saving, loading and training 1 more, bit for bit.

Parameters
----------
X : array_like, shape (n, n_features), or a stream of rows
    Training data (in [0, 1] for the Bernoulli likelihood, counts >= 0 for
    the count likelihoods). Besides an in-memory array: a ``numpy.memmap``
    (e.g. ``np.load(path, mmap_mode="r")``), a Dask array, a sequence of 2-D
    arrays, or a callable returning a fresh iterator of 2-D arrays; these are
    read a buffer at a time (docs/scaling.md says which orders are exact).
    A scipy sparse matrix (CSR, CSC, ...), a backed matrix or an AnnData
    (or a view of one, or a backed one) is read a batch at a time and only
    that batch is made dense; the batches are the in-memory ones, so the
    weights equal those of the same fit on the dense array (bit for bit
    with sparse_first_layer=False, else up to float32 rounding:
    docs/single-cell.md). With `comm`, this rank's shard.
{options}

Returns
-------
History
    Per-epoch loss, recon, kl, val_loss and seconds.

Raises
------
vaefast.NonFiniteError
    If a step's loss or gradient is NaN or infinite: that step is not
    applied and the weights keep their last finite values. If instead the
    optimizer's update itself overflows float32 (gradients beyond about
    1e19), the entries it would overflow keep their values and the rest of
    that step is applied; the weights are never NaN or infinite.
RuntimeError
    If another thread is already training this model.
TypeError, ValueError
    For a bad argument, naming it.
vaefast.distributed.DistributedError
    With `comm`, on every rank when any rank failed.
"""

SIGNATURE = inspect.Signature(
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
     inspect.Parameter("X", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [inspect.Parameter(o.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=o.default)
       for o in OPTIONS])


def declare(method: _Fit) -> _Fit:
    """Give `method` (def fit(self, X, *args, **kwargs)) the table's
    signature and docstring."""
    options = "\n".join(f"{o.name} : {o.doc}".replace("\n        ", "\n    ")
                        for o in OPTIONS)
    method.__signature__ = SIGNATURE  # type: ignore[attr-defined]  # read by inspect

    method.__doc__ = _DOC.format(options=options)
    return method


def validate(model: object, X: object, *args: Any,
             **kwargs: Any) -> tuple[object, dict[str, Any]]:
    """Bind fit's arguments to the table (TypeError as for any call) and
    check each option; returns (X, {option name: checked value})."""
    bound = SIGNATURE.bind(model, X, *args, **kwargs)
    bound.apply_defaults()
    values = bound.arguments
    return values["X"], {o.name: o.check(values[o.name], o.name) for o in OPTIONS}
