"""NumPy float64 twin of the scVI-parameterised count losses (csrc/count.c).

The mean of gene j in cell i is scVI's (scvi-tools ``DecoderSCVI.forward``,
scvi/nn/_base_components.py: px_rate = exp(library) · softmax(decoder
output), with ``library`` the log of the observed total count)::

    mu_ij = L_i · softmax(r_i)_j,   log mu_ij = log L_i + r_ij − logsumexp_k(r_ik)

with r the decoder's output (``rho_logits``) and L the library size (> 0,
not its log). On this mean:

- Poisson:  log p(x) = x·log mu − mu − lgamma(x + 1)
- NB, inverse dispersion θ = exp(ρ), a = log mu − ρ:
  log p(x) = lgamma(x + θ) − lgamma(θ) − lgamma(x + 1) − θ·softplus(a) − x·softplus(−a)
  (scvi/distributions/_negative_binomial.py, ``log_nb_positive``, without
  its eps)
- ZINB with zero-inflation logits w (the dropout probability is sigmoid(w),
  scVI's ``zi_logits``, ``log_zinb_positive``):
  x = 0:  log p = logaddexp(w, l0) − softplus(w),  l0 = −θ·softplus(a) = log NB(0)
  x > 0:  log p = −softplus(w) + log NB(x)

log θ is clamped to [LOG_THETA_MIN, LOG_THETA_MAX] as in the other NB kernel;
beyond the clamp the gradient is kept only where descent moves ρ back.
Every function here is float64 and vectorised; the gradients are the closed
forms derived in docs/models.md (tests/test_zinb.py checks them against
finite differences and PyTorch autograd).
"""

import numpy as np

from .._spec.likelihoods import POISSON, SCVI_NB, SCVI_POISSON, ZINB
from .._spec.limits import LIMITS

LOG_THETA_MIN, LOG_THETA_MAX = LIMITS["log_theta_min"], LIMITS["log_theta_max"]
COUNT_LIKELIHOODS = (POISSON.name, "nb", ZINB.name)


def _special():
    """scipy.special's gammaln/digamma (scipy is a test dependency only)."""
    from scipy import special

    return special.gammaln, special.digamma


def _softplus(a):
    return np.logaddexp(0.0, a)


def _sigmoid(a):
    return np.exp(-np.logaddexp(0.0, -a))


def scvi_log_mean(rho_logits, library):
    """log mu (n, G) = log L_i + log_softmax(rho_logits)_ij."""
    r = np.asarray(rho_logits, dtype=np.float64)
    top = r.max(axis=1, keepdims=True)
    lse = top + np.log(np.exp(r - top).sum(axis=1, keepdims=True))
    return np.log(np.asarray(library, dtype=np.float64))[:, None] + r - lse


def log_poisson(x, log_mu):
    """Elementwise log Poisson(x; mu) from log mu."""
    gammaln, _ = _special()
    return x * log_mu - np.exp(log_mu) - gammaln(x + 1.0)


def log_nb(x, log_mu, log_theta):
    """Elementwise log NB(x; mean mu, inverse dispersion θ = exp(log_theta))."""
    gammaln, _ = _special()
    theta = np.exp(log_theta)
    a = log_mu - log_theta
    return (gammaln(x + theta) - gammaln(theta) - gammaln(x + 1.0)
            - theta * _softplus(a) - x * _softplus(-a))


def log_zinb(x, log_mu, log_theta, pi_logits):
    """Elementwise log ZINB(x; mu, θ, dropout probability sigmoid(pi_logits))."""
    theta = np.exp(log_theta)
    l0 = -theta * _softplus(log_mu - log_theta)
    zero = np.logaddexp(pi_logits, l0) - _softplus(pi_logits)
    nonzero = -_softplus(pi_logits) + log_nb(x, log_mu, log_theta)
    return np.where(x > 0, nonzero, zero)


def count_loss(x, rho_logits, library, log_theta=None, pi_logits=None,
               likelihood=ZINB.name, scale=1.0):
    """Per-row negative log-likelihood and its gradients, float64.  [vf_count_loss]

    Parameters
    ----------
    x : (n, G) counts; rho_logits : (n, G); library : (n,) > 0
    log_theta : (G,) per gene or (n, G) per cell and gene (NB, ZINB)
    pi_logits : (n, G) zero-inflation logits (ZINB)
    likelihood : "poisson", "nb" or "zinb"
    scale : factor applied to every gradient

    Returns
    -------
    loss : (n,)  −Σ_j log p(x_ij)
    drho : (n, G)  scale·∂loss_i/∂rho_logits
    dlog_theta : (G,) scale·Σ_i ∂loss_i/∂ρ_j for a per-gene log_theta,
        (n, G) per element otherwise; None for Poisson
    dpi : (n, G) scale·∂loss_i/∂pi_ij, or None
    """
    if likelihood not in COUNT_LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {COUNT_LIKELIHOODS}, got {likelihood!r}")
    x = np.asarray(x, dtype=np.float64)
    log_mu = scvi_log_mean(rho_logits, library)
    mu = np.exp(log_mu)
    p = mu / np.asarray(library, dtype=np.float64)[:, None]  # softmax(r)
    dlt = dpi = None
    if likelihood == POISSON.name:
        logp = log_poisson(x, log_mu)
        g = mu - x  # ∂(−log p)/∂log mu
    else:
        _, digamma = _special()
        raw = np.broadcast_to(np.asarray(log_theta, dtype=np.float64), x.shape)
        rho = np.clip(raw, LOG_THETA_MIN, LOG_THETA_MAX)
        theta = np.exp(rho)
        a = log_mu - rho
        sp, sig = _softplus(a), _sigmoid(a)
        # NB parts: ∂(−log NB)/∂log mu and ∂(−log NB)/∂ρ
        g_nb = (x + theta) * sig - x
        dg = np.where(x > 0, digamma(x + theta) - digamma(theta), 0.0)
        drho_nb = -theta * (dg - sp + sig) + x * (1.0 - sig)
        if likelihood == "nb":
            logp = log_nb(x, log_mu, rho)
            g, dr = g_nb, drho_nb
        else:
            w = np.asarray(pi_logits, dtype=np.float64)
            logp = log_zinb(x, log_mu, rho, w)
            l0 = -theta * sp
            post = _sigmoid(l0 - w)  # P(the zero came from the NB part)
            zero = x == 0
            g = np.where(zero, post * theta * sig, g_nb)
            dr = np.where(zero, post * theta * (sp - sig), drho_nb)
            dpi = scale * np.where(zero, _sigmoid(w) - _sigmoid(w - l0), _sigmoid(w))
        if np.ndim(log_theta) == 1:
            dr = dr.sum(axis=0)
            raw = raw[0]
        dlt = np.where(((raw < LOG_THETA_MIN) & (dr > 0)) | ((raw > LOG_THETA_MAX) & (dr < 0)),
                       0.0, dr)
        dlt = scale * dlt
    # chain through log mu = log L + r − logsumexp(r): ∂/∂r_j = g_j − p_j·Σ_k g_k
    drho = scale * (g - p * g.sum(axis=1, keepdims=True))
    return -logp.sum(axis=1), drho, dlt, dpi


# The model's scVI likelihoods (vaefast/_spec/likelihoods.py) -> count_loss's kind.
SCVI_KINDS = {ZINB.name: ZINB.name, SCVI_NB.name: "nb", SCVI_POISSON.name: POISSON.name}


def scvi_recon(likelihood, out, x, log_theta=None, size_factors=None, scale=1.0):
    """The model's scVI reconstruction term: (per-row loss, scale·∂/∂out,
    scale·∂/∂log θ summed over the rows, or None).

    out (n, D) is rho, or [rho | pi] (n, 2D) for "zinb"; the library is
    size_factors, else the row totals of x (the C model's rule,
    csrc/vae_likelihood.c)."""
    kind = SCVI_KINDS[likelihood]
    x = np.asarray(x, dtype=np.float64)
    D = x.shape[1]
    library = x.sum(axis=1) if size_factors is None else size_factors
    pi = out[:, D:] if kind == ZINB.name else None
    loss, drho, dlt, dpi = count_loss(x, out[:, :D], library, log_theta, pi, kind, scale)
    dout = drho if dpi is None else np.concatenate([drho, dpi], axis=1)
    return loss, dout, dlt
