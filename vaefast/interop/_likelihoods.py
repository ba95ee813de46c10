"""The exporters' view of the likelihood registry (vaefast/_spec/likelihoods.py)."""

from .._spec import likelihoods


def likelihood_export(name: str) -> likelihoods.Likelihood:
    """The registry record of likelihood `name`, with its torch and ONNX hooks;
    NotImplementedError naming it if there is none or it has no hooks."""
    lik = likelihoods.REGISTRY.get(name)
    if lik is None or lik.onnx_mean is None or lik.torch_log_px is None:
        exportable = sorted(k for k, v in likelihoods.REGISTRY.items() if v.onnx_mean)
        raise NotImplementedError(
            f"exporting a model with the {name!r} likelihood is not implemented "
            f"(vaefast.interop knows {exportable})")
    return lik
