"""vaefast -> PyTorch: a torch.nn.Module with the same layers and weights.

Imported only by vaefast.interop.to_torch (it imports torch at the top).
"""

from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np
import torch
from numpy.typing import NDArray

from .._spec.limits import LOGVAR_RANGE
from .._typing import Tensor

if TYPE_CHECKING:
    from ..model import VAE
from ._likelihoods import likelihood_export
from ._model_spec import TORCH_ALSO, exportable_config, extra_param_name, layer_names
from ._dispersion_spec import HEAD as THETA_HEAD, dispersion_spec
from .torch_covariates import CovariateTables, copy_in, copy_out
from .torch_dispersion import add_parameters, clamped, split_output


def _mlp(widths: Sequence[int], final_linear: bool, batch_norm: bool = False,
         layer_norm: bool = False, dropout: float = 0.0) -> Any:
    """Linear+ReLU for each consecutive pair of `widths`; the last Linear has
    no ReLU when `final_linear`. A hidden layer is Linear → [BatchNorm1d] →
    [LayerNorm] → ReLU → [Dropout] (vaefast/_hidden_options.py)."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if final_linear and i == len(widths) - 2:
            continue
        if batch_norm:
            layers.append(torch.nn.BatchNorm1d(n_out, momentum=0.01, eps=0.001))
        if layer_norm:
            layers.append(torch.nn.LayerNorm(n_out, elementwise_affine=False))
        layers.append(torch.nn.ReLU())
        if dropout > 0:
            layers.append(torch.nn.Dropout(dropout))
    return torch.nn.Sequential(*layers)


def _side_options(config: Mapping[str, Any], side: str) -> dict[str, Any]:
    """_mlp's hidden-layer options of one side from a get_config() dict."""
    def on(key: str, default: str) -> bool:
        return config.get(key, default) in (side, "both")

    return {"batch_norm": on("use_batch_norm", "none"),
            "layer_norm": on("use_layer_norm", "none"),
            "dropout": float(config.get("dropout_rate", 0.0)) if on("dropout_on", "both")
            else 0.0}


# torch is Any to the checker (optional, absent where the check runs).
class TorchVAE(torch.nn.Module):  # type: ignore[misc]  # Any base (see above)
    """The vaefast VAE architecture in PyTorch.

    ``encoder``: Sequential of Linear+ReLU (n_features + n_conditions ->
    hidden...); ``mu``, ``logvar``: Linear heads; ``decoder``: Sequential of
    Linear+ReLU (latent_dim + n_conditions -> decoder_hidden...) ending in
    the Linear output layer (the likelihood's natural parameter: logits, the
    Gaussian mean, the count log-mean, scVI's rho; with variance="sample"
    2·n_features outputs, the mean then the log-variance, and for ZINB rho
    then the zero-inflation logits); ``likelihood``: a
    ParameterDict with the per-feature ``logvar`` (variance="feature") or
    ``log_theta`` (negative binomial), else empty.

    Conditional models take the conditions ``c`` (N, n_conditions) in every
    method; the first layers read ``[x | c]`` and ``[z | c]``. Models with
    categorical covariates take ``codes`` (N, K) ints too; ``covariates``
    holds their tables (vaefast/interop/torch_covariates.py); with
    dispersion="gene-label" and n_labels, ``codes`` (N, K + 1), the labels
    last. The count
    likelihoods' encoder reads log(1 + x), as vaefast's does.

    Parameters
    ----------
    config : dict
        ``VAE.get_config()`` of the model this mirrors.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        config = {"n_conditions": 0, "variance": "unit", **config}
        self.vaefast_config = dict(config)
        self.likelihood_name = config["likelihood"]
        self.variance = config["variance"]
        self.n_conditions = int(config["n_conditions"])
        self.beta = float(config["beta"])
        self._lik = likelihood_export(self.likelihood_name)
        hidden, dec = list(config["hidden"]), list(config["decoder_hidden"])
        D, Z, C = config["n_features"], config["latent_dim"], self.n_conditions
        self.n_features = D
        self.encoder = _mlp([D + C] + hidden, False, **_side_options(config, "encoder"))
        last = hidden[-1] if hidden else D + C
        self.mu = torch.nn.Linear(last, Z)
        self.logvar = torch.nn.Linear(last, Z)
        self.dispersion = dispersion_spec(config)
        self.heads = self._lik.output_heads(self.variance)  # D columns each
        if self.dispersion.head:
            self.heads += (THETA_HEAD,)
        n_out = len(self.heads) * D
        self.decoder = _mlp([Z + C] + dec + [n_out], True, **_side_options(config, "decoder"))
        self.likelihood = torch.nn.ParameterDict()
        extra = extra_param_name(config)
        if extra:
            self.likelihood[extra.split(".", 1)[1]] = torch.nn.Parameter(torch.zeros(D))
        add_parameters(self, self.dispersion, D)
        self.covariates = CovariateTables(config)

    def _with_c(self, h: Tensor, c: Optional[Tensor]) -> Tensor:
        """[h | c] for a conditional model; checks c is given exactly then."""
        if self.n_conditions == 0:
            if c is not None:
                raise ValueError("c was given but this model is unconditional (n_conditions=0)")
            return h
        if c is None:
            raise ValueError(f"c is required: this model is conditional "
                             f"(n_conditions={self.n_conditions})")
        if c.shape != (h.shape[0], self.n_conditions):
            raise ValueError(f"c must have shape ({h.shape[0]}, {self.n_conditions}), "
                             f"got {tuple(c.shape)}")
        return torch.cat([h, c.to(h.dtype)], dim=1)

    def encode(self, x: Tensor, c: Optional[Tensor] = None,
               codes: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """(mu, logvar) of q(z|x[, c]); logvar clamped to [-30, 30] as in vaefast."""
        codes = self.covariates.check(codes, x.shape[0])
        if self._lik.counts:
            x = torch.log(1.0 + x)
        h = self.covariates.run("encoder", self.encoder, self._with_c(x, c), codes)
        head = self.covariates.add("head", torch.cat([self.mu(h), self.logvar(h)], dim=1), codes)
        lo, hi = LOGVAR_RANGE
        Z = self.mu.out_features
        return head[:, :Z], head[:, Z:].clamp(lo, hi)

    def output_layer(self, z: Tensor, c: Optional[Tensor] = None,
                     codes: Optional[Tensor] = None) -> Tensor:
        """The decoder's raw output (N, n_features), or (N, 2·n_features)
        with variance="sample" (mean | log-variance) and ZINB (rho | zero-inflation
        logits), and n_features more columns (log θ) with dispersion="gene-cell"."""
        codes = self.covariates.check(codes, z.shape[0])
        return self.covariates.run("decoder", self.decoder, self._with_c(z, c), codes, "output")

    def decode(self, z: Tensor, c: Optional[Tensor] = None,
               size_factors: Optional[Tensor] = None, codes: Optional[Tensor] = None) -> Tensor:
        """Mean of p(x|z[, c]) (count likelihoods: times size_factors (N,), default 1)."""
        out = self.output_layer(z, c, codes)[:, :self.n_features]
        assert self._lik.torch_mean is not None  # likelihood_export checked the hooks
        return self._lik.torch_mean(torch, out, size_factors)

    def log_theta(self, z: Tensor, c: Optional[Tensor] = None,
                  codes: Optional[Tensor] = None) -> Tensor:
        """log θ (N, n_features) of p(x|z) for the negative binomials, clamped
        as vaefast's kernels clamp it: the per-gene vector, each row's table
        row, or the "gene-cell" head's columns."""
        if not any(k.startswith("log_theta") for k in self.likelihood) and \
                not self.dispersion.head:
            raise ValueError(f"the {self.likelihood_name!r} likelihood has no θ")
        checked = self.covariates.check(codes, z.shape[0])
        theta = split_output(self, self.output_layer(z, c, codes), checked)[1]
        assert theta is not None
        return clamped(theta.expand(z.shape[0], -1))

    def reconstruct(self, x: Tensor, c: Optional[Tensor] = None,
                    size_factors: Optional[Tensor] = None,
                    codes: Optional[Tensor] = None) -> Tensor:
        """decode(mu): the deterministic reconstruction."""
        return self.decode(self.encode(x, c, codes)[0], c, size_factors, codes)

    def forward(self, x: Tensor, eps: Optional[Tensor] = None, c: Optional[Tensor] = None,
                size_factors: Optional[Tensor] = None,
                codes: Optional[Tensor] = None) -> Tensor:
        """Per-sample ELBO ``log p(x|z) - beta·KL(q(z|x) || N(0, I))`` with
        ``z = mu + exp(logvar/2)·eps`` (eps ~ N(0, I) drawn by torch if None);
        train with ``loss = -module(x).mean()``."""
        mu, logvar = self.encode(x, c, codes)
        if eps is None:
            eps = torch.randn_like(mu)
        z = mu + torch.exp(0.5 * logvar) * eps
        out, extra = split_output(self, self.output_layer(z, c, codes),
                                  self.covariates.check(codes, x.shape[0]))
        assert self._lik.torch_log_px is not None  # likelihood_export checked the hooks
        log_px = self._lik.torch_log_px(torch, out, x, extra, size_factors, self.variance)
        kl = 0.5 * (torch.exp(logvar) + mu * mu - 1.0 - logvar).sum(dim=1)
        return log_px - self.beta * kl


def weight_targets(module: TorchVAE) -> list[tuple[tuple[str, ...], Any]]:
    """[(get_weights() prefixes, torch Linear)] in forward order; the output
    layer's prefixes are its heads (its rows split in equal parts): ("output",
    "output_logvar") with variance="sample", ("output", "output_pi") for ZINB,
    else ("output",)."""
    config = module.vaefast_config
    names = layer_names(len(config["hidden"]), len(config["decoder_hidden"]))
    # Sequential children are numbered with the ReLUs in between: map in order.
    enc = [m for m in module.encoder if isinstance(m, torch.nn.Linear)]
    dec = [m for m in module.decoder if isinstance(m, torch.nn.Linear)]
    targets = enc + [module.mu, module.logvar] + dec
    assert len(targets) == len(names)
    prefixes: list[tuple[str, ...]] = [(name,) for name in names]
    prefixes[-1] = tuple(module.heads)
    return list(zip(prefixes, targets))


def batch_norm_targets(module: TorchVAE) -> list[tuple[str, Any]]:
    """[(get_weights() prefix of the layer, its BatchNorm1d)] in forward order."""
    out = []
    for side in ("encoder", "decoder"):
        norms = [m for m in getattr(module, side) if isinstance(m, torch.nn.BatchNorm1d)]
        out += [(f"{side}.{i}", bn) for i, bn in enumerate(norms)]
    return out


def to_torch(model: "VAE") -> TorchVAE:
    """TorchVAE with `model`'s weights (vaefast (in, out) -> torch (out, in))."""
    from .._hidden_options import running_statistics

    module = TorchVAE(exportable_config(model, TORCH_ALSO))
    weights = model.get_weights()
    stats = {prefix: (mean, var) for prefix, mean, var in running_statistics(model)}
    with torch.no_grad():
        for prefix, bn in batch_norm_targets(module):
            bn.weight.copy_(torch.from_numpy(weights[f"{prefix}.batch_norm.weight"]))
            bn.bias.copy_(torch.from_numpy(weights[f"{prefix}.batch_norm.bias"]))
            bn.running_mean.copy_(torch.from_numpy(stats[prefix][0]))
            bn.running_var.copy_(torch.from_numpy(stats[prefix][1]))
        for prefixes, layer in weight_targets(module):
            layer.weight.copy_(torch.cat([torch.from_numpy(weights[f"{p}.weight"].T.copy())
                                          for p in prefixes]))
            layer.bias.copy_(torch.cat([torch.from_numpy(weights[f"{p}.bias"])
                                        for p in prefixes]))
        for key, param in module.likelihood.items():
            param.copy_(torch.from_numpy(weights[f"likelihood.{key}"]))
        copy_in(module, weights)
    return module


def vaefast_weights(module: TorchVAE) -> dict[str, NDArray[np.float32]]:
    """The get_weights() dict of a TorchVAE (the inverse of to_torch's copy)."""
    weights: dict[str, NDArray[np.float32]] = {}
    for prefixes, layer in weight_targets(module):
        W = layer.weight.detach().cpu().numpy().T
        b = layer.bias.detach().cpu().numpy()
        width = W.shape[1] // len(prefixes)
        for i, p in enumerate(prefixes):
            weights[f"{p}.weight"] = W[:, i * width:(i + 1) * width]
            weights[f"{p}.bias"] = b[i * width:(i + 1) * width]
    for key, param in module.likelihood.items():
        weights[f"likelihood.{key}"] = param.detach().cpu().numpy()
    for prefix, bn in batch_norm_targets(module):
        weights[f"{prefix}.batch_norm.weight"] = bn.weight.detach().cpu().numpy()
        weights[f"{prefix}.batch_norm.bias"] = bn.bias.detach().cpu().numpy()
    copy_out(module, weights)
    return weights
