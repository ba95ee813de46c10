"""The scVI-parameterised count losses (csrc/count.c), one fused pass.

mean = library · softmax(rho_logits) per row (scvi-tools' DecoderSCVI);
Poisson, negative binomial ("nb") or zero-inflated negative binomial
("zinb", zero-inflation logits ``pi_logits``). The maths is in
docs/models.md; the float64 twin is ``vaefast.reference.count_loss``.
"""

from typing import Any, Literal, Optional

import numpy as np

from .. import _core
from .._typing import ArrayLike, F32
from .._spec.likelihoods import POISSON, ZINB
from .._sparse_batch import csr_parts, explain_bad_csr
from .._validation import as_float, as_float32_array, nonfinite_result

__all__ = ["count_loss", "COUNT_LIKELIHOODS"]

COUNT_LIKELIHOODS = tuple(_core.COUNT_CODES)


def _check_counts(x: F32) -> None:
    """Name what is wrong with the counts x (float32, finite); return if nothing."""
    if (x < 0).any():
        raise ValueError(f"x must be non-negative counts, got a minimum of {x.min()}")
    if (x > _core.COUNT_MAX).any() or (x != np.floor(x)).any():
        raise ValueError("x must hold integer counts (at most 2**24); "
                         f"got e.g. {x[(x != np.floor(x)) | (x > _core.COUNT_MAX)][0]}")


def _check_csr_counts(parts: tuple[Any, ...], N: int) -> None:
    """Name what is wrong with CSR counts (structure, then values)."""
    data, indices, indptr, _ = parts
    stored = data[int(indptr[0]):int(indptr[-1])]
    if not np.isfinite(stored).all():
        raise ValueError("x contains NaN or infinity")
    _check_counts(stored)
    explain_bad_csr(data, indices, indptr, N, None, "x")


def count_loss(x: ArrayLike, rho_logits: ArrayLike, library: ArrayLike,
               log_theta: Optional[ArrayLike] = None, pi_logits: Optional[ArrayLike] = None,
               likelihood: str = ZINB.name, scale: float = 1.0, need_grad: bool = True
               ) -> tuple[F32, Optional[F32], Optional[F32], Optional[F32]]:
    """Per-row negative log-likelihood of counts under scVI's mean, and its gradients.

    Parameters
    ----------
    x : array_like or CSR (or CSC) matrix, shape (M, N)
        Integer counts >= 0 (cells × genes). A sparse x stays sparse: the
        core reads its stored entries (one row at a time) and the results
        equal those of the dense x bit for bit.
    rho_logits : array_like, shape (M, N)
        The decoder's output; the mean is ``library[:, None] · softmax(rho_logits)``.
    library : array_like, shape (M,)
        Library sizes > 0 (the observed total count of each cell; not its log).
    log_theta : array_like, shape (N,) or (M, N)
        log of the inverse dispersion θ, per gene or per cell and gene
        ("nb", "zinb"; clamped to ``vaefast.ops.LIMITS["log_theta_min"/"max"]``).
    pi_logits : array_like, shape (M, N)
        "zinb": logits of the dropout probability (scVI's ``zi_logits``).
    likelihood : {"zinb", "nb", "poisson"}
    scale : float
        Factor applied to every gradient.
    need_grad : bool
        If False the gradients are None.

    Returns
    -------
    loss : ndarray, float32, shape (M,)
        Σ_j −log p(x_ij), every constant included.
    drho : ndarray, float32, shape (M, N), or None
        scale·∂loss_i/∂rho_logits (through the softmax).
    dlog_theta : ndarray, float32, shape of log_theta, or None
        scale·∂/∂log θ: summed over rows for a per-gene log_theta; None for
        "poisson".
    dpi : ndarray, float32, shape (M, N), or None
        "zinb": scale·∂loss_i/∂pi_logits.
    """
    if likelihood not in COUNT_LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {COUNT_LIKELIHOODS}, got {likelihood!r}")
    rho = as_float32_array(rho_logits, "rho_logits", ndim=2)
    M, N = rho.shape
    sparse = getattr(x, "format", None) in ("csr", "csc") and hasattr(x, "indptr")
    parts = csr_parts(x, "x") if sparse else None
    dense = None if sparse else as_float32_array(x, "x", ndim=2)
    shape = parts[3] if parts is not None else dense.shape if dense is not None else None
    if shape != rho.shape:
        raise ValueError(f"x must have the shape of rho_logits {rho.shape}, got {shape}")
    lib = as_float32_array(library, "library", ndim=1)
    if lib.shape[0] != M:
        raise ValueError(f"library must have {M} entries (one per row), got {lib.shape[0]}")
    if not (lib > 0).all():
        raise ValueError(f"library must be > 0, got a minimum of {lib.min()}")
    lt = w = None
    if likelihood == POISSON.name:
        for name, value in (("log_theta", log_theta), ("pi_logits", pi_logits)):
            if value is not None:
                raise ValueError(f"{name} is not a parameter of the Poisson likelihood")
    else:
        if log_theta is None:
            raise ValueError(f"log_theta is required for likelihood={likelihood!r}")
        lt = as_float32_array(log_theta, "log_theta", ndim=(1, 2))
        if lt.shape not in ((N,), (M, N)):
            raise ValueError(f"log_theta must have shape ({N},) or ({M}, {N}), got {lt.shape}")
    if likelihood == ZINB.name:
        if pi_logits is None:
            raise ValueError(f"pi_logits is required for likelihood={ZINB.name!r}")
        w = as_float32_array(pi_logits, "pi_logits", ndim=2)
        if w.shape != rho.shape:
            raise ValueError(f"pi_logits must have shape {rho.shape}, got {w.shape}")
    elif pi_logits is not None:
        raise ValueError(f"pi_logits is not a parameter of likelihood={likelihood!r}")
    scale = as_float(scale, "scale")
    loss = np.empty(M, dtype=np.float32)
    drho: Optional[F32] = None
    dlt: Optional[F32] = None
    dpi: Optional[F32] = None
    if need_grad:
        drho = np.empty((M, N), dtype=np.float32)
        if lt is not None:
            dlt = np.empty(lt.shape, dtype=np.float32)
        if w is not None:
            dpi = np.empty((M, N), dtype=np.float32)
    lt2 = None if lt is None else lt.reshape(-1, N)
    outputs = (lib, lt2, w, loss, drho, None if dlt is None else dlt.reshape(-1, N), dpi,
               scale)
    try:
        if parts is None:
            assert dense is not None
            _core.count_loss_into(likelihood, rho, dense, *outputs)
        else:
            data, indices, indptr, _ = parts
            _core.count_loss_csr_into(likelihood, rho, indptr, indices, data, *outputs)
    except ValueError:
        # the core checks the counts in its pass (every other argument is
        # checked above): find what to name only when it refuses
        if parts is not None:
            _check_csr_counts(parts, N)
        else:
            assert dense is not None
            _check_counts(dense)
        raise
    if not np.isfinite(loss).all():
        nonfinite_result("count_loss", [("rho_logits", rho, rho), ("log_theta", lt, lt),
                                        ("pi_logits", w, w)])
    return loss, drho, dlt, dpi
