"""The VAE by hand: one forward pass and the key gradients on a tiny model, printed step by step.

Three training examples, 4 features, 3 hidden units, 2 latent dimensions and
the Gaussian likelihood, computed in float64 with vaefast.reference (the NumPy
twin of the C kernels), so every number can be checked with pencil and paper.
"""

import sys
from typing import Any, Optional, TextIO

import numpy as np
from numpy.typing import NDArray

from .. import reference as ref
from .._spec.likelihoods import GAUSSIAN

# Three small training examples (rows) with 4 features each.
EXAMPLES = np.array([[0.0, 0.5, 1.0, 0.25],
                     [1.0, 0.0, 0.5, 0.75],
                     [0.25, 1.0, 0.0, 0.5]])


def walkthrough_steps(seed: int = 0) -> dict[str, NDArray[Any]]:
    """Every intermediate of one VAE forward pass and its main gradients.

    Parameters
    ----------
    seed : int
        Seed of the weights and of the noise eps.

    Returns
    -------
    dict of str -> ndarray
        In order: ``x`` (3×4); encoder ``W1`` (4×3), ``b1`` (3), ``pre1``
        (x·W1 + b1), ``h`` (ReLU); heads ``W_mu``, ``b_mu``, ``W_logvar``,
        ``b_logvar``, ``mu`` (3×2), ``logvar``, ``sigma`` = exp(logvar/2);
        ``eps`` (3×2) standard normal; ``offset`` = sigma·eps, ``z`` = mu +
        offset; decoder ``W2``, ``b2``, ``h_dec`` (ReLU), ``W3``, ``b3``, ``y``
        (3×4, Gaussian mean); ``dKL_dmu`` = mu, ``dKL_dsigma`` = sigma −
        1/sigma; ``dRecon_dy`` = y − x (per-example, unscaled); the
        per-example ``kl`` and ``recon`` (Gaussian negative log-likelihood).
    """
    params = ref.init_params(4, hidden=(3,), latent_dim=2, seed=seed, dtype=np.float64)
    x = EXAMPLES.copy()
    eps = np.random.default_rng([seed, 1]).standard_normal((3, 2))
    (W1, b1), = params["encoder"]
    Wh, bh = params["head"]
    (W2, b2), = params["decoder"]
    W3, b3 = params["output"]
    s: dict[str, NDArray[Any]] = {"x": x, "W1": W1, "b1": b1}
    s["pre1"] = ref.linear_forward(x, W1, b1)
    s["h"] = ref.linear_forward(x, W1, b1, "relu")
    s["W_mu"], s["b_mu"] = Wh[:, :2], bh[:2]
    s["W_logvar"], s["b_logvar"] = Wh[:, 2:], bh[2:]
    mu, logvar = ref.split_head(ref.linear_forward(s["h"], Wh, bh))
    s["mu"], s["logvar"] = mu, logvar
    s["sigma"] = np.exp(0.5 * logvar)
    s["eps"] = eps
    s["offset"] = s["sigma"] * eps
    s["z"] = ref.reparam_forward(mu, logvar, eps)
    s["W2"], s["b2"] = W2, b2
    s["h_dec"] = ref.linear_forward(s["z"], W2, b2, "relu")
    s["W3"], s["b3"] = W3, b3
    s["y"] = ref.linear_forward(s["h_dec"], W3, b3)
    s["kl"] = ref.kl_normal(mu, logvar)
    s["recon"] = ref.recon_loss(GAUSSIAN.name, s["y"], x)[0]
    s["dKL_dmu"] = mu.copy()
    s["dKL_dsigma"] = s["sigma"] - 1.0 / s["sigma"]
    # recon_loss's gradient with scale 1: dL/dy = y − x for 0.5·(y − x)²
    s["dRecon_dy"] = ref.recon_loss(GAUSSIAN.name, s["y"], x, 1.0)[1]
    return s


_SECTIONS = [
    ("1. Encoder layer: pre1 = x·W1 + b1, h = ReLU(pre1)", ["x", "W1", "b1", "pre1", "h"]),
    ("2. Mean and standard-deviation heads: mu = h·W_mu + b_mu, "
     "logvar = h·W_logvar + b_logvar, sigma = exp(logvar / 2)",
     ["W_mu", "b_mu", "mu", "W_logvar", "b_logvar", "logvar", "sigma"]),
    ("3. Noise: eps ~ N(0, 1), one row per example", ["eps"]),
    ("4. Mean plus offset: z = mu + sigma·eps", ["offset", "z"]),
    ("5. Decoder layers: h_dec = ReLU(z·W2 + b2), y = h_dec·W3 + b3",
     ["W2", "b2", "h_dec", "W3", "b3", "y"]),
    ("6. Losses per example: KL = ½Σ(sigma² + mu² − 1 − log sigma²), "
     "recon = ½Σ(y − x)² + const", ["kl", "recon"]),
    ("7. KL gradients: dKL/dmu = mu, dKL/dsigma = sigma − 1/sigma", ["dKL_dmu", "dKL_dsigma"]),
    ("8. Reconstruction gradient: dRecon/dy = y − x", ["dRecon_dy"]),
]


def format_matrix(name: str, a: NDArray[Any]) -> str:
    """A labelled matrix (or vector) as text, 3 decimals, shape in the label."""
    a = np.atleast_2d(np.asarray(a))
    shape = "×".join(str(n) for n in np.asarray(a).shape)
    lines = [f"  {name} ({shape}):"]
    for row in a:
        lines.append("    [" + " ".join(f"{v:8.3f}" for v in row) + " ]")
    return "\n".join(lines)


def print_walkthrough(seed: int = 0, out: Optional[TextIO] = None) -> None:
    """Print every step of :func:`walkthrough_steps` as small labelled matrices.

    Parameters
    ----------
    seed : int
    out : file-like, optional
        Default sys.stdout.
    """
    out = sys.stdout if out is None else out
    s = walkthrough_steps(seed)
    print("A VAE by hand: 3 examples, 4 features -> 3 hidden -> 2 latent -> 3 hidden -> 4, "
          "Gaussian likelihood (float64, vaefast.reference)", file=out)
    for title, names in _SECTIONS:
        print(f"\n{title}", file=out)
        for n in names:
            print(format_matrix(n, s[n]), file=out)
