"""Interoperability: ONNX export and PyTorch in and out.

Every engine is imported only when its function is called, so
``import vaefast`` (and ``import vaefast.interop``) imports none of onnx,
onnxruntime or torch. The safetensors format needs no package at all: it is
``VAE.save(path, format="safetensors")`` / ``VAE.load(path)``.

See docs/interop.md for the graph names and shapes, the accepted PyTorch
layouts and measured inference speed.
"""

from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Optional

from .._typing import StrPath
from ._model_spec import ONNX_ALSO, TORCH_ALSO, exportable_config

if TYPE_CHECKING:
    from ..model import VAE

__all__ = ["to_onnx", "to_torch", "from_torch"]

# onnx.ModelProto and torch.nn.Module: the packages are optional and absent
# where the type check runs, so their objects are Any.
OnnxModel = Any
TorchModule = Any


def _require(package: str, extra: str = "interop") -> ModuleType:
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError:
        raise ImportError(f"this needs the {package!r} package: pip install "
                          f"\"vaefast[{extra}]\"") from None


def to_onnx(model: "VAE", path: StrPath, part: Literal["vae", "encoder", "decoder"] = "vae",
            opset: int = 17) -> OnnxModel:
    """Write `model` (or one half of it) as an ONNX graph.

    Parameters
    ----------
    model : vaefast.VAE
    path : str or os.PathLike
        The .onnx file written.
    part : {"vae", "encoder", "decoder"}
        ``"encoder"``: input ``x`` (N, n_features) -> outputs ``mu`` and
        ``logvar`` (N, latent_dim), logvar clipped to [-30, 30] (count
        likelihoods: the encoder reads log(1 + x), as vaefast's);
        ``"decoder"``: input ``z`` (N, latent_dim) -> ``x_mean``
        (N, n_features), the mean of p(x|z) (sigmoid of the logits for
        Bernoulli, exp(min(output, 30)) for the count likelihoods with a
        size factor of 1), and with a learned Gaussian variance
        ``x_logvar`` (N, n_features), floored at -10; ``"vae"``: input
        ``x`` -> the decoder's outputs through z = mu (deterministic
        reconstruction). A conditional model has a second input ``c``
        (N, n_conditions), a model with K categorical covariates an input
        ``codes`` (N, K) int64 in each graph whose layers read them. With
        a NB/ZINB ``dispersion=`` other than "gene" the decoder's graphs
        also output ``log_theta`` (N, n_features), each row's log θ clipped
        to [-20, 20] (its θ table row, gathered by the code, or the
        "gene-cell" head), and read ``codes`` ((N, K + 1) with the labels of
        ``n_labels`` last). N is a dynamic dimension.
    opset : int, >= 13
        ONNX default-domain opset version.

    Returns
    -------
    onnx.ModelProto
        The graph written, already validated by ``onnx.checker``.

    Raises
    ------
    NotImplementedError
        For a likelihood or configuration option the exporter does not know
        (named in the message). Batch norm is exported folded into its
        Linear (the inference affine of the running statistics); layer norm
        is not exported yet.
    """
    # refuse what cannot be exported, onnx installed or not (batch norm folds)
    exportable_config(model, ONNX_ALSO)
    _require("onnx")
    from .onnx_export import to_onnx as _to_onnx

    return _to_onnx(model, path, part, opset)


def to_torch(model: "VAE") -> TorchModule:
    """A ``torch.nn.Module`` with the architecture and weights of `model`.

    The module (:class:`vaefast.interop.torch_export.TorchVAE`) has
    ``encode(x, c=None) -> (mu, logvar)``, ``decode(z, c=None,
    size_factors=None)`` (the mean of p(x|z)), ``reconstruct(x, c=None,
    size_factors=None)`` and ``forward(x, eps=None, c=None,
    size_factors=None)``, the per-sample ELBO with the given
    reparameterization noise (``torch.randn`` when None), for every
    likelihood, variance and conditional model vaefast has. It
    computes in the dtype of its parameters (float32; call ``.double()``
    for float64). :func:`from_torch` turns it back into the same VAE.
    A model with categorical covariates gives a module whose methods take
    ``codes=`` (N, K) too, each receiving layer adding its table's rows
    after its Linear (vaefast/interop/torch_covariates.py); its ONNX
    graphs take an input ``codes`` (vaefast/interop/onnx_export.py).
    The NB/ZINB dispersion modes export too: a θ table per batch or label
    code (``likelihood.log_theta_table``, gathered by the code), or the
    "gene-cell" head as D more outputs of the output Linear
    (vaefast/interop/torch_dispersion.py); ``log_theta(z, codes=)`` gives
    each row's log θ.
    Hidden layers with batch / layer norm and dropout are Linear →
    BatchNorm1d (momentum 0.01, eps 0.001, the running statistics copied) →
    LayerNorm (no affine) → ReLU → Dropout, as vaefast trains them (the
    module's own dropout masks come from torch's generator); from_torch
    does not read such modules back yet.

    Parameters
    ----------
    model : vaefast.VAE

    Returns
    -------
    torch.nn.Module
    """
    exportable_config(model, TORCH_ALSO)  # refuse what cannot be exported, torch installed or not
    _require("torch")
    from .torch_export import to_torch as _to_torch

    return _to_torch(model)


def from_torch(source: Any, likelihood: Optional[str] = None, beta: Optional[float] = None,
               seed: int = 0) -> "VAE":
    """Build a VAE from PyTorch weights.

    Parameters
    ----------
    source : torch.nn.Module, dict of str -> tensor/array, or tuple of modules
        One of

        * the PyTorch examples VAE layout: ``fc1`` (encoder hidden),
          ``fc21`` (mu), ``fc22`` (logvar), ``fc3`` (decoder hidden), ``fc4``
          (output logits), as a module or its ``state_dict()``;
        * a module with ``encoder`` and ``decoder`` attributes that are
          ``nn.Sequential`` of ``Linear`` and ``ReLU`` (a final ``Sigmoid``
          in the decoder is read as the Bernoulli mean), with separate
          ``mu``/``logvar`` (or ``fc_mu``/``fc_logvar``, ``fc_mu``/``fc_var``)
          Linear heads, or with none: then the encoder's last Linear is the
          joined head, mu in its first half of outputs, logvar in the second;
          or its ``state_dict()`` (ReLU assumed between Linear layers);
        * a tuple ``(encoder, decoder)`` (joined head) or ``(encoder, mu,
          logvar, decoder)`` of such modules;
        * a module made by :func:`to_torch` (exact round trip, any model).

        Conditional models and variance="sample" output layers are read only
        from a to_torch module. A state_dict may hold the per-feature
        ``likelihood.logvar`` (read as variance="feature") or
        ``likelihood.log_theta`` (required by the negative binomial).
    likelihood : {"bernoulli", "gaussian", "poisson", "negative_binomial"}, optional
        Needed unless the source says it (a to_torch module, the examples
        layout: Bernoulli, a decoder ending in Sigmoid: Bernoulli).
    beta : float, optional
        KL weight (default: the to_torch module's, else 1).
    seed : int
        Seed of the new VAE (its training noise and shuffling).

    Returns
    -------
    vaefast.VAE

    Raises
    ------
    ValueError, TypeError
        For anything else, naming the offending layer and why.
    """
    from .torch_import import from_torch as _from_torch

    return _from_torch(source, likelihood=likelihood, beta=beta, seed=seed)
