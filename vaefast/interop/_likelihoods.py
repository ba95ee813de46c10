"""What each likelihood means to the exporters, in one table.

The decoder's output layer gives the likelihood's natural parameter (logits
for Bernoulli, the mean for the unit-variance Gaussian). An exporter needs
two facts per likelihood: how to turn that output into the mean of p(x|z)
(the ONNX op, or None for the identity) and how to score log p(x|z) in
PyTorch. A new likelihood is one entry of LIKELIHOODS; a model whose
likelihood has no entry is refused with NotImplementedError naming it.
"""

import math
from dataclasses import dataclass
from typing import Callable, Optional

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass(frozen=True)
class LikelihoodExport:
    """How one likelihood is written in the exported graphs.

    onnx_mean : ONNX operator applied to the output layer to give the mean of
        p(x|z), or None when the output layer already is the mean.
    torch_mean : (torch, out) -> mean of p(x|z).
    torch_log_px : (torch, out, x) -> log p(x|z) per row.
    """

    onnx_mean: Optional[str]
    torch_mean: Callable
    torch_log_px: Callable


def _bernoulli_log_px(torch, logits, x):
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return -bce.sum(dim=1)


def _gaussian_log_px(torch, mean, x):
    d = mean - x
    return -(0.5 * d * d + _HALF_LOG_2PI).sum(dim=1)


LIKELIHOODS = {
    "bernoulli": LikelihoodExport(onnx_mean="Sigmoid",
                                  torch_mean=lambda torch, out: torch.sigmoid(out),
                                  torch_log_px=_bernoulli_log_px),
    "gaussian": LikelihoodExport(onnx_mean=None,
                                 torch_mean=lambda torch, out: out,
                                 torch_log_px=_gaussian_log_px),
}


def likelihood_export(name):
    """The table entry of likelihood `name`, or NotImplementedError naming it."""
    try:
        return LIKELIHOODS[name]
    except KeyError:
        raise NotImplementedError(
            f"exporting a model with the {name!r} likelihood is not implemented "
            f"(vaefast.interop knows {sorted(LIKELIHOODS)})") from None
