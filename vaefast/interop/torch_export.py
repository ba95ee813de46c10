"""vaefast -> PyTorch: a torch.nn.Module with the same layers and weights.

Imported only by vaefast.interop.to_torch (it imports torch at the top).
"""

import torch

from .. import _core
from ._likelihoods import likelihood_export
from ._model_spec import exportable_config, layer_names


def _mlp(widths, final_linear):
    """Linear+ReLU for each consecutive pair of `widths`; the last Linear has
    no ReLU when `final_linear`."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if not (final_linear and i == len(widths) - 2):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class TorchVAE(torch.nn.Module):
    """The vaefast VAE architecture in PyTorch.

    ``encoder``: Sequential of Linear+ReLU (n_features -> hidden...);
    ``mu``, ``logvar``: Linear heads; ``decoder``: Sequential of Linear+ReLU
    (latent_dim -> decoder_hidden...) ending in the Linear output layer (the
    likelihood's natural parameter: logits or the Gaussian mean).

    Parameters
    ----------
    config : dict
        ``VAE.get_config()`` of the model this mirrors.
    """

    def __init__(self, config):
        super().__init__()
        self.vaefast_config = dict(config)
        self.likelihood = config["likelihood"]
        self.beta = float(config["beta"])
        self._lik = likelihood_export(self.likelihood)
        hidden, dec = list(config["hidden"]), list(config["decoder_hidden"])
        D, Z = config["n_features"], config["latent_dim"]
        self.encoder = _mlp([D] + hidden, final_linear=False)
        last = hidden[-1] if hidden else D
        self.mu = torch.nn.Linear(last, Z)
        self.logvar = torch.nn.Linear(last, Z)
        self.decoder = _mlp([Z] + dec + [D], final_linear=True)

    def encode(self, x):
        """(mu, logvar) of q(z|x); logvar clamped to [-30, 30] as in vaefast."""
        h = self.encoder(x)
        lo, hi = _core.LOGVAR_RANGE
        return self.mu(h), self.logvar(h).clamp(lo, hi)

    def decode(self, z):
        """Mean of p(x|z)."""
        return self._lik.torch_mean(torch, self.decoder(z))

    def reconstruct(self, x):
        """decode(mu): the deterministic reconstruction."""
        return self.decode(self.encode(x)[0])

    def forward(self, x, eps=None):
        """Per-sample ELBO ``log p(x|z) - beta·KL(q(z|x) || N(0, I))`` with
        ``z = mu + exp(logvar/2)·eps`` (eps ~ N(0, I) drawn by torch if None);
        train with ``loss = -module(x).mean()``."""
        mu, logvar = self.encode(x)
        if eps is None:
            eps = torch.randn_like(mu)
        z = mu + torch.exp(0.5 * logvar) * eps
        log_px = self._lik.torch_log_px(torch, self.decoder(z), x)
        kl = 0.5 * (torch.exp(logvar) + mu * mu - 1.0 - logvar).sum(dim=1)
        return log_px - self.beta * kl


def to_torch(model):
    """TorchVAE with `model`'s weights (vaefast (in, out) -> torch (out, in))."""
    config = exportable_config(model)
    module = TorchVAE(config)
    weights = model.get_weights()
    names = layer_names(len(config["hidden"]), len(config["decoder_hidden"]))
    # Sequential children are numbered with the ReLUs in between: map in order.
    enc = [m for m in module.encoder if isinstance(m, torch.nn.Linear)]
    dec = [m for m in module.decoder if isinstance(m, torch.nn.Linear)]
    targets = enc + [module.mu, module.logvar] + dec
    assert len(targets) == len(names)
    with torch.no_grad():
        for name, layer in zip(names, targets):
            layer.weight.copy_(torch.from_numpy(weights[f"{name}.weight"].T.copy()))
            layer.bias.copy_(torch.from_numpy(weights[f"{name}.bias"]))
    return module
