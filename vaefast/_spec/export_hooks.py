"""What each likelihood means to the exporters: the registry's torch and
ONNX hooks (vaefast/_spec/likelihoods.py says which belongs to which).

The decoder's output layer gives the likelihood's natural parameter (logits
for Bernoulli, the mean for the Gaussian, the log-mean for the count
likelihoods). An exporter needs, per likelihood: how to turn that output
into the mean of p(x|z) (in ONNX and in PyTorch) and how to score log p(x|z)
in PyTorch. No hook imports torch or onnx: each takes the torch module (or
the ONNX graph builder) as its first argument.

  onnx_mean(g, out) -> name of the mean of p(x|z) (size factor 1)
  torch_mean(torch, out, size_factors or None) -> mean of p(x|z)
  torch_log_px(torch, out, x, extra, size_factors, variance) -> log p(x|z)
      per row; `out` is the whole output layer ((N, 2D) with
      variance="sample"), `extra` the per-feature parameter or None.

Every clamp mirrors vaefast's own (limits.py): the count mean is
exp(min(out, poisson_lograte_max)) as in csrc/vae_infer.c output_mean_rows,
the Gaussian's learned log-variance is floored at gaussian_logvar_min, log θ
is clipped to [log_theta_min, log_theta_max]. The log-densities are those of
densities.py (every constant included), written in torch ops so they run in
any dtype and differentiate. Their gradients at those clamps are the
training kernels' (csrc/isa/likelihood_kernels.c), for descent on the
negative ELBO: the Poisson cap passes the gradient straight through; a
log-variance below its floor or a log θ outside its range gets gradient only
where descent moves it back (per element, before a per-feature parameter's
rows are summed).
"""

import functools
import math
from types import ModuleType
from typing import Any, Callable, Optional, Protocol

from .._typing import ArrayLike, Tensor
from .limits import LIMITS


class OnnxGraph(Protocol):
    """What the ONNX hooks use of the exporter's graph builder
    (interop/onnx_export.py): named constants and nodes."""

    def constant(self, name: str, array: ArrayLike) -> str: ...
    def node(self, op: str, inputs: list[str], output: str, **attributes: Any) -> str: ...


_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# ------------------------------------------------------------ ONNX means
def onnx_sigmoid(g: OnnxGraph, out: str) -> str:
    return g.node("Sigmoid", [out], "x_mean.value")


def onnx_identity(g: OnnxGraph, out: str) -> str:
    return g.node("Identity", [out], "x_mean.value")


def onnx_count_mean(g: OnnxGraph, out: str) -> str:
    cap = g.constant("output.lograte_max", LIMITS["poisson_lograte_max"])
    return g.node("Exp", [g.node("Min", [out, cap], "output.clamped")], "x_mean.value")


def onnx_softmax_mean(g: OnnxGraph, out: str) -> str:
    """scVI's mean with library 1 (the normalised expression): softmax(rho)."""
    return g.node("Softmax", [out], "x_mean.value", axis=1)


# ------------------------------------------------------------ PyTorch
@functools.lru_cache(maxsize=None)
def _inward_clamp(torch: ModuleType) -> Callable[..., Tensor]:
    """clamp(v, lo, hi) whose gradient outside [lo, hi] is kept only where
    descent (v -= grad) moves v back inside, as vaefast's kernels do."""

    class InwardClamp(torch.autograd.Function):  # type: ignore[misc,name-defined]  # no torch types
        @staticmethod
        def forward(ctx: Any, v: Tensor, lo: float, hi: float) -> Tensor:
            ctx.save_for_backward(v)
            ctx.bounds = lo, hi
            return v.clamp(lo, hi)

        @staticmethod
        def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
            (v,) = ctx.saved_tensors
            lo, hi = ctx.bounds
            outward = ((v < lo) & (grad > 0)) | ((v > hi) & (grad < 0))
            return grad.masked_fill(outward, 0.0), None, None

    apply: Callable[..., Tensor] = InwardClamp.apply
    return apply


def _capped_log_rate(torch: ModuleType, eta: Tensor) -> Tensor:
    """min(eta, cap) with the gradient passed straight through (the Poisson kernel's)."""
    over = (eta - LIMITS["poisson_lograte_max"]).clamp(min=0.0)
    return eta - over.detach()


def count_mean(torch: ModuleType, out: Tensor, size_factors: Optional[Tensor]) -> Tensor:
    mean = torch.exp(out.clamp(max=LIMITS["poisson_lograte_max"]))
    return mean if size_factors is None else mean * size_factors[:, None]


def _log_rate(torch: ModuleType, out: Tensor, size_factors: Optional[Tensor]) -> Tensor:
    """eta = out + log s (the log-mean with size factors)."""
    return out if size_factors is None else out + torch.log(size_factors)[:, None]


def bernoulli_log_px(torch: ModuleType, logits: Tensor, x: Tensor, extra: Optional[Tensor],
                     size_factors: Optional[Tensor], variance: str) -> Tensor:
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return -bce.sum(dim=1)


def gaussian_log_px(torch: ModuleType, out: Tensor, x: Tensor, extra: Optional[Tensor],
                    size_factors: Optional[Tensor], variance: str) -> Tensor:
    D = x.shape[1]
    d = out[:, :D] - x
    if variance == "unit":
        return -(0.5 * d * d + _HALF_LOG_2PI).sum(dim=1)
    if variance == "sample":
        logvar = out[:, D:]
    else:
        assert extra is not None, "variance='feature' needs the per-feature log-variance"
        logvar = extra.expand(x.shape[0], D)
    v = _inward_clamp(torch)(logvar, LIMITS["gaussian_logvar_min"], math.inf)
    return -(0.5 * (d * d * torch.exp(-v) + v) + _HALF_LOG_2PI).sum(dim=1)


def poisson_log_px(torch: ModuleType, out: Tensor, x: Tensor, extra: Optional[Tensor],
                   size_factors: Optional[Tensor], variance: str) -> Tensor:
    eta = _capped_log_rate(torch, _log_rate(torch, out, size_factors))
    return (x * eta - torch.exp(eta) - torch.lgamma(x + 1.0)).sum(dim=1)


def negative_binomial_log_px(torch: ModuleType, out: Tensor, x: Tensor,
                             extra: Optional[Tensor], size_factors: Optional[Tensor],
                             variance: str) -> Tensor:
    assert extra is not None, "the negative binomial needs log θ"
    log_theta = _clamped_log_theta(torch, extra, x.shape[0])
    return _log_nb(torch, x, _log_rate(torch, out, size_factors), log_theta).sum(dim=1)


def sigmoid_mean(torch: ModuleType, out: Tensor, size_factors: Optional[Tensor]) -> Tensor:
    return torch.sigmoid(out)


def identity_mean(torch: ModuleType, out: Tensor, size_factors: Optional[Tensor]) -> Tensor:
    return out


# scVI's parameterisation (densities.py _scvi_terms): log mu = log L +
# log_softmax(rho), rho = out[:, :D], L = the size factors or the row totals.
def softmax_mean(torch: ModuleType, out: Tensor, size_factors: Optional[Tensor]) -> Tensor:
    mean = torch.softmax(out, dim=1)
    return mean if size_factors is None else mean * size_factors[:, None]


def _scvi_log_mean(torch: ModuleType, out: Tensor, x: Tensor,
                   size_factors: Optional[Tensor]) -> Tensor:
    library = x.sum(dim=1) if size_factors is None else size_factors
    return torch.log(library)[:, None] + torch.log_softmax(out[:, :x.shape[1]], dim=1)


def _clamped_log_theta(torch: ModuleType, extra: Tensor, rows: int) -> Tensor:
    return _inward_clamp(torch)(extra.expand(rows, -1), LIMITS["log_theta_min"],
                                LIMITS["log_theta_max"])


def _log_nb(torch: ModuleType, x: Tensor, log_mu: Tensor, log_theta: Tensor) -> Tensor:
    """Elementwise log NB(x; mu, θ) in the softplus form of densities._log_nb."""
    theta = torch.exp(log_theta)
    a = log_mu - log_theta
    softplus = torch.nn.functional.softplus
    return (torch.lgamma(x + theta) - torch.lgamma(theta) - torch.lgamma(x + 1.0)
            - theta * softplus(a) - x * softplus(-a))


def scvi_poisson_log_px(torch: ModuleType, out: Tensor, x: Tensor, extra: Optional[Tensor],
                        size_factors: Optional[Tensor], variance: str) -> Tensor:
    log_mu = _scvi_log_mean(torch, out, x, size_factors)
    return (x * log_mu - torch.exp(log_mu) - torch.lgamma(x + 1.0)).sum(dim=1)


def scvi_nb_log_px(torch: ModuleType, out: Tensor, x: Tensor, extra: Optional[Tensor],
                   size_factors: Optional[Tensor], variance: str) -> Tensor:
    assert extra is not None, "the scVI NB needs log θ"
    log_mu = _scvi_log_mean(torch, out, x, size_factors)
    return _log_nb(torch, x, log_mu, _clamped_log_theta(torch, extra, x.shape[0])).sum(dim=1)


def zinb_log_px(torch: ModuleType, out: Tensor, x: Tensor, extra: Optional[Tensor],
                size_factors: Optional[Tensor], variance: str) -> Tensor:
    """out = [rho | w], w the zero-inflation logits: a zero scores
    logaddexp(w, log NB(0)) - softplus(w), a count log NB(x) - softplus(w)."""
    assert extra is not None, "the ZINB needs log θ"
    D = x.shape[1]
    log_mu = _scvi_log_mean(torch, out, x, size_factors)
    log_theta = _clamped_log_theta(torch, extra, x.shape[0])
    w = out[:, D:]
    softplus = torch.nn.functional.softplus
    log_nb0 = -torch.exp(log_theta) * softplus(log_mu - log_theta)
    nonzero = x > 0
    # lgamma only where the count is non-zero: torch.where would carry a NaN
    # gradient from the branch not taken, so that branch reads x = 1 there
    log_nb = _log_nb(torch, torch.where(nonzero, x, torch.ones_like(x)), log_mu, log_theta)
    zero = torch.logaddexp(w, log_nb0)
    return (torch.where(nonzero, log_nb, zero) - softplus(w)).sum(dim=1)
