"""NumPy twin of vaefast's C core and of the whole VAE.

This module is the oracle every C kernel is tested against and the NumPy
baseline the benchmarks compare with. It is written to be read: one function
per step of the model, each mirroring one C function, no autograd. Every
function works in the dtype of its inputs (float32 or float64).

Shapes: B = batch, D = features, H = hidden width, Z = latent dimension.

The model (Kingma & Welling, "Auto-Encoding Variational Bayes")::

    x ──enc MLP (ReLU)──▶ h ──head──▶ [mu | logvar]   (one matrix of width 2Z)
    z = mu + exp(0.5·logvar)·eps,  eps ~ N(0, I)
    z ──dec MLP (ReLU)──▶ out                         (logits or Gaussian mean)
    loss per sample = recon_nll(x, out) + beta · KL(N(mu, var) ‖ N(0, I))

Parameters are held as a dict of layers, each a (W, b) pair with W shaped
(in_features, out_features)::

    {"encoder": [(W, b), ...], "head": (W, b), "decoder": [(W, b), ...],
     "output": (W, b)}
"""

import math

import numpy as np

# The layout (layer widths, init) is stated once, in vaefast/_spec/layout.py;
# the likelihoods' names and the clamps in the registry beside it (plain
# data: the reference never imports the compiled core it checks).
from .._spec.layout import Layout, init_layer  # noqa: F401
from .._spec.likelihoods import BERNOULLI, GAUSSIAN, REGISTRY
from .._spec.limits import LOGVAR_RANGE
# The random streams' twins (Philox4x32-10, normals, the reparameterization
# noise eps(seed, step, row, col)) live beside the RNG kernels' binding.
from .rng import normal, philox4x32_10, reparam_eps  # noqa: F401
# The scVI-parameterised count losses (mean = library · softmax(decoder output)).
from .count import (  # noqa: F401
    SCVI_KINDS, count_loss, log_nb, log_poisson, log_zinb, scvi_log_mean, scvi_recon)

# The twin's whole-model likelihoods on any real targets (csrc/vae*.c has
# more); the scVI ones (SCVI_KINDS: counts, log θ in params["likelihood"]) too.
LIKELIHOODS = (BERNOULLI.name, GAUSSIAN.name)

# The logvar head's output is clamped to this range before use, so exp never
# overflows in float32; inside it the model is the plain one. exp(30) ~ 1e13.
LOGVAR_MIN, LOGVAR_MAX = LOGVAR_RANGE

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# --------------------------------------------------------------- dense layer
def linear_forward(x, W, b=None, activation=None):
    """y (B, out) = act(x (B, in) · W (in, out) + b (out)).  [vf_linear_forward]"""
    y = x @ W
    if b is not None:
        y = y + b
    if activation == "relu":
        y = np.maximum(y, 0)
    elif activation is not None:
        raise ValueError(f"activation must be None or 'relu', got {activation!r}")
    return y


def relu_mask(grad, y):
    """Gradient through a ReLU whose output was y: grad where y > 0, else 0."""
    return np.where(y > 0, grad, 0).astype(grad.dtype, copy=False)


def linear_backward(x, W, dy, y=None, activation=None, need_dx=True):
    """Gradients of a dense layer y = act(x·W + b).

    dy (B, out) is dL/dy; with activation="relu", y (B, out) is the forward
    output and the gradient only flows where y > 0.
    Returns dx (B, in) or None, dW (in, out) = xᵀ·dz, db (out) = Σ_rows dz.
    [vf_linear_backward_input, vf_linear_backward_weight]
    """
    if activation == "relu":
        if y is None:
            raise ValueError("y is required with activation='relu'")
        dz = relu_mask(dy, y)
    elif activation is None:
        dz = dy
    else:
        raise ValueError(f"activation must be None or 'relu', got {activation!r}")
    dW = x.T @ dz
    db = dz.sum(axis=0)
    dx = dz @ W.T if need_dx else None
    return dx, dW, db


# ------------------------------------------------------ reparameterization
def split_head(head_out):
    """[mu | logvar] (B, 2Z) -> mu (B, Z), logvar clamped (B, Z)."""
    Z = head_out.shape[1] // 2
    mu = head_out[:, :Z]
    logvar = np.clip(head_out[:, Z:], LOGVAR_MIN, LOGVAR_MAX)
    return mu, logvar


def reparam_forward(mu, logvar, eps):
    """z (B, Z) = mu + exp(0.5·logvar) ⊙ eps.  [vf_reparam_forward]"""
    return mu + np.exp(0.5 * logvar) * eps


def reparam_backward(mu, logvar, eps, dz, kl_scale):
    """Gradients of (dz-weighted z) + kl_scale·KL w.r.t. mu and logvar.

    dmu = dz + kl_scale·mu; dlogvar = dz·0.5·sigma·eps + kl_scale·0.5·(exp(logvar) − 1).
    dz may be None (KL only).  [vf_reparam_backward]
    """
    dmu = kl_scale * mu
    dlogvar = kl_scale * 0.5 * (np.exp(logvar) - 1)
    if dz is not None:
        dmu = dmu + dz
        dlogvar = dlogvar + dz * 0.5 * np.exp(0.5 * logvar) * eps
    return dmu, dlogvar


# ------------------------------------------------------------------ losses
def kl_normal(mu, logvar):
    """Per-row KL(N(mu, exp(logvar)) ‖ N(0, I)) = 0.5·Σ(exp(lv) + mu² − 1 − lv)."""
    return 0.5 * np.sum(np.exp(logvar) + mu * mu - 1 - logvar, axis=1)


def softplus(a):
    """log(1 + exp(a)), stable for any finite a."""
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def sigmoid(a):
    """1 / (1 + exp(−a)), stable for any finite a."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def bernoulli_loss(logits, x, scale=1.0):
    """Per-row −log p(x | logits) = Σ softplus(l) − x·l, and scale·(sigmoid(l) − x)."""
    loss = np.sum(softplus(logits) - x * logits, axis=1)
    return loss, scale * (sigmoid(logits) - x)


def gaussian_loss(y, x, scale=1.0):
    """Per-row −log N(x; y, I) = Σ 0.5·(y − x)² + 0.5·log 2π, and scale·(y − x)."""
    diff = y - x
    loss = np.sum(0.5 * diff * diff + HALF_LOG_2PI, axis=1)
    return loss, scale * diff


def _special():
    """scipy.special's gammaln/digamma: an lgamma independent of the C kernels'."""
    from scipy import special

    return special.gammaln, special.digamma


def poisson_loss(out, x, size_factors=None, scale=1.0):
    """Per-row −log Poisson(x; rate), rate = s·exp(min(out + log s, 30) − log s).

    loss = Σ rate − x·eta + lgamma(x + 1), eta = min(out + log s, 30);
    dout = scale·(rate − x).  [vf_poisson_loss]
    """
    gammaln, _ = _special()
    eta = out if size_factors is None else out + np.log(size_factors)[:, None]
    eta = np.minimum(eta, 30.0)
    rate = np.exp(eta)
    loss = np.sum(rate - x * eta + gammaln(x + 1), axis=1)
    return loss, scale * (rate - x)


def negbin_loss(out, x, log_theta, size_factors=None, scale=1.0):
    """Per-row −log NB(x; mean μ = s·exp(out), inverse dispersion θ = exp(log θ)).

    −log p = −lgamma(x+θ) + lgamma(θ) + lgamma(x+1) − θ·log(θ/(θ+μ)) − x·log(μ/(θ+μ));
    returns (loss, scale·∂/∂out, scale·∂/∂log θ per element), log θ clamped
    to [−20, 20].  [vf_negbin_loss]
    """
    gammaln, digamma = _special()
    eta = out if size_factors is None else out + np.log(size_factors)[:, None]
    rho = np.clip(log_theta, -20.0, 20.0)[None, :]
    theta = np.exp(rho)
    log_den = np.logaddexp(rho, eta)  # log(θ + μ)
    logp = (gammaln(x + theta) - gammaln(theta) - gammaln(x + 1)
            + theta * (rho - log_den) + x * (eta - log_den))
    frac = np.exp(eta - log_den)  # μ/(θ+μ)
    dout = (x + theta) * frac - x
    dtheta = -(digamma(x + theta) - digamma(theta) + rho - log_den + 1 - (theta + x) * np.exp(-log_den))
    dlt = theta * dtheta
    raw = np.broadcast_to(log_theta[None, :], dlt.shape)
    dlt = np.where(((raw < -20) & (dlt > 0)) | ((raw > 20) & (dlt < 0)), 0.0, dlt)
    return -logp.sum(axis=1), scale * dout, scale * dlt


def gaussian_var_loss(y, x, logvar, scale=1.0):
    """Per-row −log N(x; y, exp(v)), v = max(logvar, −10) (logvar (M, N) or (N,)).

    Returns (loss, scale·∂/∂y, scale·∂/∂logvar per element; zero below the
    floor where descent would lower it further).  [vf_gaussian_var_loss]
    """
    logvar = np.broadcast_to(logvar, y.shape)
    v = np.maximum(logvar, -10.0)
    d = y - x
    loss = np.sum(0.5 * (d * d / np.exp(v) + v) + HALF_LOG_2PI, axis=1)
    dlv = 0.5 * (1 - d * d / np.exp(v))
    dlv = np.where((logvar < -10.0) & (dlv > 0), 0.0, dlv)
    return loss, scale * d / np.exp(v), scale * dlv


def recon_loss(likelihood, out, x, scale=1.0):
    """Dispatch to the likelihood's loss: (per-row loss, gradient w.r.t. out)."""
    return recon_terms(likelihood, out, x, scale)[:2]


def recon_terms(likelihood, out, x, scale=1.0, params=None, size_factors=None):
    """(per-row loss, gradient w.r.t. out, gradient w.r.t. the per-feature
    parameter params["likelihood"] (log θ) or None)."""
    if likelihood == BERNOULLI.name:
        return bernoulli_loss(out, x, scale) + (None,)
    if likelihood == GAUSSIAN.name:
        return gaussian_loss(out, x, scale) + (None,)
    if likelihood in SCVI_KINDS:
        log_theta = None if params is None else params.get("likelihood")
        return scvi_recon(likelihood, out, x, log_theta, size_factors, scale)
    raise ValueError(f"likelihood must be one of {LIKELIHOODS + tuple(SCVI_KINDS)}, "
                     f"got {likelihood!r}")


def encoder_input(likelihood, x):
    """What the encoder reads: log(1 + x) for a count likelihood (the
    registry's `counts`), else x itself."""
    return np.log1p(x) if REGISTRY[likelihood].counts else x


# -------------------------------------------------------------- optimizers
def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, t):
    """One Adam step (t >= 1), decoupled weight decay. Returns new (param, m, v)."""
    param = param * (1 - lr * weight_decay) if weight_decay else param
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def sgd_update(param, grad, velocity, lr, momentum, weight_decay):
    """SGD with momentum (PyTorch convention). Returns new (param, velocity)."""
    g = grad + weight_decay * param if weight_decay else grad
    velocity = momentum * velocity + g
    return param - lr * velocity, velocity


# ------------------------------------------------------------------- model
def _layout(n_features, hidden, latent_dim, decoder_hidden):
    hidden = tuple(hidden)
    decoder_hidden = tuple(reversed(hidden)) if decoder_hidden is None else tuple(decoder_hidden)
    return Layout(n_features, hidden, latent_dim, decoder_hidden), len(hidden)


def layer_sizes(n_features, hidden, latent_dim, decoder_hidden=None):
    """Widths of every layer: (encoder dims, head dims, decoder dims, output dims)."""
    layout, n_enc = _layout(n_features, hidden, latent_dim, decoder_hidden)
    dims = [(n_in, n_out) for _, n_in, n_out, _, _ in layout.layers]
    return {"encoder": dims[:n_enc], "head": dims[n_enc], "decoder": dims[n_enc + 1:-1],
            "output": dims[-1]}


def init_params(n_features, hidden=(400,), latent_dim=20, decoder_hidden=None,
                seed=0, dtype=np.float32):
    """Fresh parameters, drawn layer by layer in forward order (vaefast/_layout.py)."""
    layout, n_enc = _layout(n_features, hidden, latent_dim, decoder_hidden)
    flat = layout.init(seed, dtype)
    pairs = [(flat[w:w + n_in * n_out].reshape(n_in, n_out).copy(), flat[b:b + n_out].copy())
             for _, n_in, n_out, w, b in layout.layers]
    return {"encoder": pairs[:n_enc], "head": pairs[n_enc], "decoder": pairs[n_enc + 1:-1],
            "output": pairs[-1]}


def mlp_forward(layers, x):
    """ReLU MLP: returns the list of activations [x, h1, h2, ...]."""
    acts = [x]
    for W, b in layers:
        acts.append(linear_forward(acts[-1], W, b, "relu"))
    return acts


def encode(params, x):
    """x (B, D) -> encoder activations, mu (B, Z), clamped logvar (B, Z), raw head (B, 2Z)."""
    enc_acts = mlp_forward(params["encoder"], x)
    head_out = linear_forward(enc_acts[-1], *params["head"])
    mu, logvar = split_head(head_out)
    return enc_acts, mu, logvar, head_out


def decode(params, z):
    """z (B, Z) -> decoder activations, output (B, D) (logits or Gaussian mean)."""
    dec_acts = mlp_forward(params["decoder"], z)
    out = linear_forward(dec_acts[-1], *params["output"])
    return dec_acts, out


def forward(params, x, eps, likelihood=BERNOULLI.name):
    """Full forward pass with the given noise eps (B, Z). Returns a cache dict."""
    enc_acts, mu, logvar, head_out = encode(params, encoder_input(likelihood, x))
    z = reparam_forward(mu, logvar, eps)
    dec_acts, out = decode(params, z)
    return {"enc_acts": enc_acts, "head_out": head_out, "mu": mu, "logvar": logvar,
            "eps": eps, "z": z, "dec_acts": dec_acts, "out": out}


def per_sample_loss(cache, x, likelihood, beta, params=None, size_factors=None):
    """Per-sample (negative ELBO, reconstruction NLL, KL), each shaped (B,)."""
    recon = recon_terms(likelihood, cache["out"], x, 1.0, params, size_factors)[0]
    kl = kl_normal(cache["mu"], cache["logvar"])
    return recon + beta * kl, recon, kl


def mlp_backward(layers, acts, d_out, need_dx=True):
    """Backward through a ReLU MLP. d_out is dL/d(last activation).

    Returns (list of (dW, db) in forward order, dL/d(input) or None).
    """
    grads = [None] * len(layers)
    d = d_out
    for i in reversed(range(len(layers))):
        W, _ = layers[i]
        dx, dW, db = linear_backward(acts[i], W, d, acts[i + 1], "relu",
                                     need_dx=need_dx or i > 0)
        grads[i] = (dW, db)
        d = dx
    return grads, d


def backward(params, cache, x, likelihood, beta, size_factors=None):
    """Gradients of the batch-mean negative ELBO, shaped like params."""
    B = x.shape[0]
    scale = 1.0 / B
    # reconstruction: dL/d(out) = (sigmoid(out) − x)/B or (out − x)/B, ...
    _, d_out, d_lik = recon_terms(likelihood, cache["out"], x, scale, params, size_factors)
    dec_acts = cache["dec_acts"]
    d_h, dW_out, db_out = linear_backward(dec_acts[-1], params["output"][0], d_out)
    dec_grads, dz = mlp_backward(params["decoder"], dec_acts, d_h)
    # latent: reparameterization + beta·KL, both folded into one gradient
    dmu, dlogvar = reparam_backward(cache["mu"], cache["logvar"], cache["eps"], dz,
                                    beta * scale)
    # the clamp passes gradient only where logvar was inside the range
    raw_logvar = cache["head_out"][:, dmu.shape[1]:]
    dlogvar = np.where((raw_logvar >= LOGVAR_MIN) & (raw_logvar <= LOGVAR_MAX), dlogvar, 0)
    d_head = np.concatenate([dmu, dlogvar], axis=1)
    enc_acts = cache["enc_acts"]
    d_enc_top, dW_head, db_head = linear_backward(enc_acts[-1], params["head"][0], d_head)
    enc_grads, _ = mlp_backward(params["encoder"], enc_acts, d_enc_top, need_dx=False)
    grads = {"encoder": enc_grads, "head": (dW_head, db_head), "decoder": dec_grads,
             "output": (dW_out, db_out)}
    if d_lik is not None:
        grads["likelihood"] = d_lik
    return grads


def loss_and_grad(params, x, eps, likelihood=BERNOULLI.name, beta=1.0, size_factors=None):
    """Batch-mean negative ELBO and its gradients for noise eps (B, Z).

    A count likelihood's encoder reads log(1 + x); an scVI likelihood's
    per-gene log θ is params["likelihood"] (D,), its gradient
    grads["likelihood"]; size_factors (B,) replace the observed library."""
    cache = forward(params, x, eps, likelihood)
    loss, _, _ = per_sample_loss(cache, x, likelihood, beta, params, size_factors)
    return loss.mean(), backward(params, cache, x, likelihood, beta, size_factors)


# ------------------------------------------------- parameter bookkeeping
def flatten(params):
    """Every array of params, in forward order: [W, b, W, b, ...]."""
    out = []
    for W, b in params["encoder"]:
        out += [W, b]
    out += list(params["head"])
    for W, b in params["decoder"]:
        out += [W, b]
    out += list(params["output"])
    return out


def unflatten(template, arrays):
    """Inverse of flatten: rebuild params' structure from a list of arrays."""
    it = iter(arrays)

    def pair():
        return (next(it), next(it))

    return {
        "encoder": [pair() for _ in template["encoder"]],
        "head": pair(),
        "decoder": [pair() for _ in template["decoder"]],
        "output": pair(),
    }


def to_named(params):
    """Params -> the public weight dict (keys as in VAE.get_weights)."""
    named = {}
    for i, (W, b) in enumerate(params["encoder"]):
        named[f"encoder.{i}.weight"], named[f"encoder.{i}.bias"] = W, b
    W, b = params["head"]
    Z = W.shape[1] // 2
    named["mu.weight"], named["mu.bias"] = W[:, :Z], b[:Z]
    named["logvar.weight"], named["logvar.bias"] = W[:, Z:], b[Z:]
    for i, (W, b) in enumerate(params["decoder"]):
        named[f"decoder.{i}.weight"], named[f"decoder.{i}.bias"] = W, b
    named["output.weight"], named["output.bias"] = params["output"]
    return named


def from_named(named, n_encoder, n_decoder):
    """The public weight dict -> params (the head's two halves joined)."""
    return {
        "encoder": [(named[f"encoder.{i}.weight"], named[f"encoder.{i}.bias"])
                    for i in range(n_encoder)],
        "head": (np.concatenate([named["mu.weight"], named["logvar.weight"]], axis=1),
                 np.concatenate([named["mu.bias"], named["logvar.bias"]])),
        "decoder": [(named[f"decoder.{i}.weight"], named[f"decoder.{i}.bias"])
                    for i in range(n_decoder)],
        "output": (named["output.weight"], named["output.bias"]),
    }


# ---------------------------------------------------------------- training
class Adam:
    """Adam over a params structure, one adam_update per array."""

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        self.lr, self.beta1, self.beta2, self.eps, self.weight_decay = lr, beta1, beta2, eps, weight_decay
        self.m = [np.zeros_like(p) for p in flatten(params)]
        self.v = [np.zeros_like(p) for p in flatten(params)]
        self.t = 0

    def step(self, params, grads):
        self.t += 1
        new = []
        for i, (p, g) in enumerate(zip(flatten(params), flatten(grads))):
            p, self.m[i], self.v[i] = adam_update(p, g, self.m[i], self.v[i], self.lr,
                                                  self.beta1, self.beta2, self.eps,
                                                  self.weight_decay, self.t)
            new.append(p.astype(g.dtype, copy=False))
        return unflatten(params, new)


class SGD:
    """SGD with momentum over a params structure."""

    def __init__(self, params, lr=1e-2, momentum=0.9, weight_decay=0.0):
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.velocity = [np.zeros_like(p) for p in flatten(params)]

    def step(self, params, grads):
        new = []
        for i, (p, g) in enumerate(zip(flatten(params), flatten(grads))):
            p, self.velocity[i] = sgd_update(p, g, self.velocity[i], self.lr,
                                             self.momentum, self.weight_decay)
            new.append(p.astype(g.dtype, copy=False))
        return unflatten(params, new)


def train_step(params, optimizer, x, eps, likelihood=BERNOULLI.name, beta=1.0):
    """Forward, loss, backward and one optimizer step. Returns (new params, loss)."""
    loss, grads = loss_and_grad(params, x, eps, likelihood, beta)
    return optimizer.step(params, grads), loss


def fit(params, X, epochs=1, batch_size=128, lr=1e-3, likelihood=BERNOULLI.name,
        beta=1.0, seed=0):
    """A plain NumPy training loop (the benchmark baseline and the demo's fallback).

    Returns (params, list of per-epoch mean training losses).
    """
    rng = np.random.default_rng(seed)
    opt = Adam(params, lr=lr)
    Z = params["head"][0].shape[1] // 2
    history = []
    for _ in range(epochs):
        order = rng.permutation(X.shape[0])
        total = 0.0
        for start in range(0, X.shape[0], batch_size):
            xb = X[order[start:start + batch_size]]
            eps = rng.standard_normal((xb.shape[0], Z)).astype(xb.dtype)
            params, loss = train_step(params, opt, xb, eps, likelihood, beta)
            total += float(loss) * xb.shape[0]
        history.append(total / X.shape[0])
    return params, history
