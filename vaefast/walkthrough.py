"""The VAE by hand: three training examples through tiny layers, every step.

``python -m vaefast walkthrough`` prints the steps; ``walkthrough_steps``
returns them, computed by vaefast.reference, so the printout is also a check
that the reference's math is the textbook's (tests/test_walkthrough.py).
"""

import numpy as np

from . import reference as ref

N_FEATURES, N_HIDDEN, N_LATENT = 4, 3, 2


def walkthrough_steps(seed=0):
    """Every intermediate of one forward/backward pass, in order.

    A 4-3-2 VAE with a Gaussian (unit variance) likelihood, float64, on
    three examples. Returns a dict of name -> array (insertion-ordered).
    """
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(0, 1, size=(3, N_FEATURES)), 2)
    params = ref.init_params(N_FEATURES, (N_HIDDEN,), N_LATENT, seed=seed, dtype=np.float64)
    eps = np.round(rng.standard_normal((3, N_LATENT)), 2)

    W1, b1 = params["encoder"][0]
    h = ref.linear_forward(x, W1, b1, "relu")
    head = ref.linear_forward(h, *params["head"])
    mu, logvar = ref.split_head(head)
    sigma = np.exp(0.5 * logvar)
    z = ref.reparam_forward(mu, logvar, eps)
    W3, b3 = params["decoder"][0]
    h_dec = ref.linear_forward(z, W3, b3, "relu")
    y = ref.linear_forward(h_dec, *params["output"])
    dmu, dlogvar = ref.reparam_backward(mu, logvar, eps, None, 1.0)
    _, dy = ref.gaussian_loss(y, x)
    return {
        "x (3 examples × 4 features)": x,
        "encoder: h = relu(x·W1 + b1)": h,
        "head: mu = h·W_mu + b_mu": mu,
        "head: logvar = h·W_logvar + b_logvar": logvar,
        "standard deviation: sigma = exp(logvar / 2)": sigma,
        "eps ~ N(0, 1)": eps,
        "offset: sigma·eps": sigma * eps,
        "z = mu + sigma·eps": z,
        "decoder: g = relu(z·W3 + b3)": h_dec,
        "output: y = g·W4 + b4": y,
        "KL gradient dKL/dmu = mu": dmu,
        "KL gradient dKL/dsigma = sigma − 1/sigma": dlogvar * 2.0 / sigma,
        "reconstruction gradient dL/dy = y − x": dy,
    }


def print_walkthrough(seed=0, file=None):
    """Print every step of walkthrough_steps as a small labelled matrix."""
    with np.printoptions(precision=3, suppress=True, floatmode="fixed"):
        for i, (name, value) in enumerate(walkthrough_steps(seed).items(), start=1):
            print(f"\n[{i}] {name}", file=file)
            print(value, file=file)
