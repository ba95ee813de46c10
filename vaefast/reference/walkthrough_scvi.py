"""The single-cell (scVI) model by hand: one training forward pass and the
likelihood's gradients on a tiny model, printed step by step.

Three cells, 5 genes, 4 hidden units, 2 latent dimensions, two batches; the
scVI pieces in the order the core runs them (docs/models.md): log(1 + x)
input, batch norm, ReLU and dropout on the encoder's hidden layer, the batch
added to the decoder's hidden layer as a row of a table (a gather, not a
product with a one-hot matrix), the mean L·softmax(rho) with L the cell's
observed total, a dispersion θ per gene or per gene and batch, and the ZINB
log-density in its zero and non-zero forms. float64 NumPy and the standard
library only (no scipy), so `python -m vaefast walkthrough --model scvi`
runs wherever vaefast does.
"""

import math
import sys
from typing import Any, Optional, TextIO

import numpy as np
from numpy.typing import NDArray

from .covariates import gather_add
from .dropout import dropout_mask
from .hidden import BN_EPS
from .norm import batch_norm_train

# Three cells (rows) by five genes of counts, mostly zeros, and each cell's batch.
COUNTS = np.array([[0.0, 3.0, 0.0, 1.0, 0.0],
                   [2.0, 0.0, 0.0, 0.0, 5.0],
                   [0.0, 1.0, 4.0, 0.0, 0.0]])
BATCH = np.array([0, 1, 0])
DROPOUT = 0.1  # scvi-tools' default rate on the encoder's hidden layers
DISPERSIONS = ("gene", "gene-batch")

F64 = NDArray[np.float64]


def _softplus(a: F64) -> F64:
    return np.logaddexp(0.0, a)


def _sigmoid(a: F64) -> F64:
    return np.exp(-np.logaddexp(0.0, -a))


_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])


def scvi_walkthrough_steps(seed: int = 0, dispersion: str = "gene-batch") -> dict[str, F64]:
    """Every intermediate of one scVI forward pass (training mode) and the
    gradients of the reconstruction term.

    Parameters
    ----------
    seed : int
        Seed of the weights, of eps and of the dropout mask (Philox, as the core draws it).
    dispersion : {"gene", "gene-batch"}
        One log θ per gene, or one per gene and batch (a row of the table per cell).

    Returns
    -------
    dict of str -> ndarray
        In order: ``x`` (3×5 counts), ``batch`` (3), ``library`` (3, row
        totals), ``x_in`` = log(1 + x); encoder ``W1`` (5×4), ``b1``, ``pre1``,
        ``bn1`` (batch norm with batch statistics, then ReLU), ``keep1`` (the
        dropout mask), ``h`` = bn1·keep1/(1 − p); heads ``mu``, ``logvar``
        (3×2), ``eps``, ``z``; decoder ``W2`` (2×4), ``T2`` (2×4, a row per
        batch), ``b2``, ``h_dec`` = ReLU(z·W2 + T2[batch] + b2); output heads
        ``rho`` (3×5) and ``pi`` (3×5, zero-inflation logits); ``softmax``,
        ``mean`` = library·softmax; ``log_theta`` (3×5, the cell's row of
        the dispersion); ``log_p`` (3×5 per entry), ``recon`` (3) = −Σ log_p,
        ``kl`` (3); ``dRecon_drho``, ``dRecon_dpi`` (3×5, per cell, unscaled).
    """
    if dispersion not in DISPERSIONS:
        raise ValueError(f"dispersion must be one of {DISPERSIONS}, got {dispersion!r}")
    rng = np.random.default_rng([seed, 2])
    x = COUNTS.copy()
    n, G, H, Z = x.shape[0], x.shape[1], 4, 2
    s: dict[str, F64] = {"x": x, "batch": BATCH.astype(np.float64), "library": x.sum(axis=1)}
    s["x_in"] = np.log1p(x)

    # encoder: Linear -> BatchNorm (batch statistics) -> ReLU -> dropout
    s["W1"] = rng.standard_normal((G, H)) / math.sqrt(G)
    s["b1"] = 0.1 * rng.standard_normal(H)
    s["pre1"] = s["x_in"] @ s["W1"] + s["b1"]
    s["bn1"] = batch_norm_train(s["pre1"], np.ones(H), np.zeros(H), BN_EPS, relu=True)[0]
    s["keep1"] = dropout_mask(seed, 0, 0, 0, n, H, DROPOUT)
    s["h"] = s["bn1"] * s["keep1"] / (1.0 - DROPOUT)
    Wh = rng.standard_normal((H, 2 * Z)) / math.sqrt(H)
    bh = 0.1 * rng.standard_normal(2 * Z)
    head = s["h"] @ Wh + bh
    s["mu"], s["logvar"] = head[:, :Z], head[:, Z:]
    s["eps"] = rng.standard_normal((n, Z))
    s["z"] = s["mu"] + np.exp(0.5 * s["logvar"]) * s["eps"]

    # decoder: the batch's row of T2 is added to z·W2 + b2 (scVI injects it into every hidden layer)
    s["W2"] = rng.standard_normal((Z, H)) / math.sqrt(Z)
    s["T2"] = 0.5 * rng.standard_normal((2, H))
    s["b2"] = 0.1 * rng.standard_normal(H)
    s["h_dec"] = gather_add(s["z"] @ s["W2"] + s["b2"], BATCH[:, None], [2], s["T2"], "relu")
    W3 = rng.standard_normal((H, 2 * G)) / math.sqrt(H)  # the two heads as one product
    b3 = 0.1 * rng.standard_normal(2 * G)
    out = s["h_dec"] @ W3 + b3
    s["rho"], s["pi"] = out[:, :G], out[:, G:]

    # the mean: library times the softmax over genes
    e = np.exp(s["rho"] - s["rho"].max(axis=1, keepdims=True))
    s["softmax"] = e / e.sum(axis=1, keepdims=True)
    s["mean"] = s["library"][:, None] * s["softmax"]
    table = 0.5 * rng.standard_normal((1 if dispersion == "gene" else 2, G))
    s["log_theta"] = np.repeat(table, n, axis=0) if dispersion == "gene" else table[BATCH]

    # ZINB per entry, a = log mean − log θ:
    #   log NB(x) = lgamma(x + θ) − lgamma(θ) − lgamma(x + 1) − θ·softplus(a) − x·softplus(−a)
    #   x = 0: log p = logaddexp(pi, log NB(0)) − softplus(pi),   log NB(0) = −θ·softplus(a)
    #   x > 0: log p = log NB(x) − softplus(pi)
    theta = np.exp(s["log_theta"])
    a = np.log(s["mean"]) - s["log_theta"]
    l0 = -theta * _softplus(a)
    log_nb = (_lgamma(x + theta) - _lgamma(theta) - _lgamma(x + 1.0)
              - theta * _softplus(a) - x * _softplus(-a))
    w = s["pi"]
    s["log_p"] = np.where(x > 0, log_nb, np.logaddexp(w, l0)) - _softplus(w)
    s["recon"] = -s["log_p"].sum(axis=1)
    s["kl"] = 0.5 * np.sum(np.exp(s["logvar"]) + s["mu"] ** 2 - 1.0 - s["logvar"], axis=1)

    # gradients of recon: first g = ∂(−log p)/∂log mean per entry, then through the softmax
    sig = _sigmoid(a)
    post = _sigmoid(l0 - w)  # P(a zero came from the NB part, not the inflation)
    g = np.where(x > 0, (x + theta) * sig - x, post * theta * sig)
    s["dRecon_drho"] = g - s["softmax"] * g.sum(axis=1, keepdims=True)
    s["dRecon_dpi"] = np.where(x > 0, _sigmoid(w), _sigmoid(w) - _sigmoid(w - l0))
    return s


_SECTIONS = [
    ("1. Counts, batches and each cell's library (its total count); the encoder reads log(1 + x)",
     ["x", "batch", "library", "x_in"]),
    ("2. Encoder layer: pre1 = x_in·W1 + b1; batch norm over the 3 cells, then ReLU; "
     "dropout keeps an entry where keep1 = 1 and scales it by 1/(1 − 0.1)",
     ["W1", "b1", "pre1", "bn1", "keep1", "h"]),
    ("3. Latent: mu and logvar from h, z = mu + exp(logvar / 2)·eps", ["mu", "logvar", "eps", "z"]),
    ("4. Decoder layer: h_dec = ReLU(z·W2 + T2[batch] + b2), the batch's row of T2 added "
     "(scVI's defaults also batch-normalise this layer; shown once, in step 2)",
     ["W2", "T2", "b2", "h_dec"]),
    ("5. Output heads: rho (the gene logits) and pi (zero-inflation logits)", ["rho", "pi"]),
    ("6. Mean: library · softmax(rho) over the genes; log θ is the cell's row of the dispersion",
     ["softmax", "mean", "log_theta"]),
    ("7. ZINB per entry (zero and non-zero forms), recon = −Σ log p, KL as in the plain VAE",
     ["log_p", "recon", "kl"]),
    ("8. Gradients: dRecon/drho = g − softmax·Σg with g = ∂(−log p)/∂log mean; dRecon/dpi",
     ["dRecon_drho", "dRecon_dpi"]),
]


def print_scvi_walkthrough(seed: int = 0, dispersion: str = "gene-batch",
                           out: Optional[TextIO] = None) -> None:
    """Print every step of :func:`scvi_walkthrough_steps` as small labelled matrices.

    Parameters
    ----------
    seed : int
    dispersion : {"gene", "gene-batch"}
    out : file-like, optional
        Default sys.stdout.
    """
    from .walkthrough import format_matrix

    out = sys.stdout if out is None else out
    s: dict[str, Any] = scvi_walkthrough_steps(seed, dispersion)
    print("The single-cell (scVI) model by hand: 3 cells, 5 genes -> 4 hidden -> 2 latent -> "
          f"4 hidden (+ batch) -> 5 genes, ZINB, dispersion {dispersion!r} "
          "(float64, vaefast.reference)", file=out)
    for title, names in _SECTIONS:
        print(f"\n{title}", file=out)
        for name in names:
            print(format_matrix(name, s[name]), file=out)
