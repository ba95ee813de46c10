"""NumPy twins of the loss and optimizer kernels, written to be read.

One function per C function, in float64 by default (pass float64 arrays);
the formulas are the documented ones, in their plainest stable form. These
are the oracles of tests/test_loss.py and tests/test_optim.py.
"""

import numpy as np

__all__ = ["bernoulli_loss", "gaussian_loss", "kl_normal", "adam_update", "sgd_update"]


def _softplus(a):
    # log(1 + exp(a)) = max(a, 0) + log1p(exp(-|a|)): never overflows.
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def _sigmoid(a):
    # Both branches divide by a number in [1, 2].
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def bernoulli_loss(logits, x, scale=1.0):
    """loss (M) = Σ_j softplus(l) − x·l; dlogits (M×N) = scale·(sigmoid(l) − x)."""
    loss = (_softplus(logits) - x * logits).sum(axis=1)
    return loss, scale * (_sigmoid(logits) - x)


def gaussian_loss(y, x, scale=1.0):
    """loss (M) = Σ_j 0.5·(y − x)² + 0.5·log(2π); dy (M×N) = scale·(y − x)."""
    d = y - x
    loss = (0.5 * d * d + 0.5 * np.log(2 * np.pi)).sum(axis=1)
    return loss, scale * d


def kl_normal(mu, logvar):
    """kl (M) = 0.5·Σ_j (exp(logvar) + mu² − 1 − logvar)."""
    return 0.5 * (np.exp(logvar) + mu * mu - 1 - logvar).sum(axis=1)


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, t):
    """One AdamW step (Adam when weight_decay = 0); returns new (param, m, v)."""
    param = param * (1 - lr * weight_decay)
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    param = param - lr * m_hat / (np.sqrt(v_hat) + eps)
    return param, m, v


def sgd_update(param, grad, velocity, lr, momentum, weight_decay):
    """One SGD-momentum step (PyTorch, no dampening); returns new (param, velocity)."""
    g = grad + weight_decay * param
    velocity = momentum * velocity + g
    return param - lr * velocity, velocity
