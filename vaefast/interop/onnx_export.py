"""ONNX export of a VAE, built with the onnx package's helpers (no PyTorch).

Graphs (every tensor float32, ``N`` a dynamic batch dimension):

* ``encoder``: input ``x`` (N, n_features) -> ``mu`` (N, latent_dim),
  ``logvar`` (N, latent_dim), logvar clipped to [-30, 30] as in vaefast.
  For the count likelihoods the first layer reads log(1 + x), as vaefast's.
* ``decoder``: input ``z`` (N, latent_dim) -> ``x_mean`` (N, n_features), the
  mean of p(x|z): sigmoid of the logits for Bernoulli, the output layer
  itself for the Gaussian, exp(min(output, 30)) for Poisson and negative
  binomial (size factor 1: multiply by a row's size factor outside). With a
  learned Gaussian variance also ``x_logvar`` (N, n_features), the
  log-variance floored at -10 as in vaefast's likelihood.
* ``vae``: input ``x`` -> the decoder's outputs through z = mu (no
  sampling); what ``VAE.reconstruct`` computes.

A conditional model (n_conditions = C > 0) has a second input ``c`` (N, C),
concatenated after x (after log(1 + x)) and after z, where vaefast's first
encoder and decoder layers read it (the last C rows of their weights).

A model with K categorical covariates has an input ``codes`` (N, K) int64;
each layer that receives them adds Gather(T, codes + offsets) summed over
the K covariates (ReduceSum) to its Gemm, T its ``{layer}.covariates``
table. The graph does not check the codes' range (onnxruntime's Gather
refuses an index out of the table).

Each layer is one Gemm (``h @ W + b``, the weight stored (in, out) exactly as
``VAE.get_weights()`` names it, e.g. ``encoder.0.weight``) followed by Relu
for hidden layers.
"""

import os

from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._typing import StrPath

if TYPE_CHECKING:
    from ..model import VAE

from .._spec.limits import LIMITS, LOGVAR_RANGE
from .._validation import as_int
from ._likelihoods import likelihood_export
from ._model_spec import ONNX_ALSO, exportable_config, folded_weights

PARTS = ("encoder", "decoder", "vae")
MIN_OPSET = 13  # Gemm-13 and Clip with min/max inputs


class _GraphBuilder:
    """Collects nodes and initializers; names follow get_weights()."""

    def __init__(self, onnx: Any, weights: Mapping[str, NDArray[Any]]) -> None:
        self.onnx, self.h, self.weights = onnx, onnx.helper, weights
        self.nodes: list[Any] = []  # onnx NodeProto (onnx: optional, untyped here)
        self.initializers: list[Any] = []  # onnx TensorProto
        self.levels: list[int] = []  # of the categorical covariates (input "codes")
        self.rows: Optional[str] = None  # codes + offsets, once a layer reads them

    def table_rows(self) -> str:
        """The stacked tables' rows of the input ``codes`` (N, K) int64: added
        to the graph by the first layer that reads them (the part has an input
        ``codes`` exactly then)."""
        if self.rows is None:
            offsets = np.cumsum([0] + self.levels[:-1]).astype(np.int64)
            for name, value in (("codes.offsets", offsets), ("codes.axis", np.array([1]))):
                self.initializers.append(self.onnx.numpy_helper.from_array(
                    value.astype(np.int64), name))
            self.rows = self.node("Add", ["codes", "codes.offsets"], "codes.rows")
        return self.rows

    def constant(self, name: str, array: ArrayLike) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(
            np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attributes: Any) -> str:
        self.nodes.append(self.h.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def linear(self, x: str, layer: str, relu: bool) -> str:
        """x @ {layer}.weight + {layer}.bias, then Relu if `relu`."""
        W = self.constant(f"{layer}.weight", self.weights[f"{layer}.weight"])
        b = self.constant(f"{layer}.bias", self.weights[f"{layer}.bias"])
        y = self.node("Gemm", [x, W, b], f"{layer}.out")
        if f"{layer}.covariates" in self.weights:
            T = self.constant(f"{layer}.covariates", self.weights[f"{layer}.covariates"])
            picked = self.node("Gather", [T, self.table_rows()], f"{layer}.covariates.rows",
                               axis=0)
            added = self.node("ReduceSum", [picked, "codes.axis"], f"{layer}.covariates.sum",
                              keepdims=0)
            y = self.node("Add", [y, added], f"{layer}.out.covariates")
        return self.node("Relu", [y], f"{layer}.relu") if relu else y

    def first_input(self, x: str, c: Optional[str], prefix: str) -> str:
        """The first layer's input: [x | c] for a conditional model."""
        return self.node("Concat", [x, c], f"{prefix}.input", axis=1) if c else x

    def encoder(self, x: str, c: Optional[str], config: Mapping[str, Any]) -> tuple[str, str]:
        if likelihood_export(config["likelihood"]).counts:  # as csrc/vae_layers.c
            one = self.constant("input.one", 1.0)
            x = self.node("Log", [self.node("Add", [x, one], "input.plus_one")], "input.log1p")
        h = self.first_input(x, c, "encoder")
        for i in range(len(config["hidden"])):
            h = self.linear(h, f"encoder.{i}", relu=True)
        mu = self.linear(h, "mu", relu=False)
        raw = self.linear(h, "logvar", relu=False)
        lo, hi = LOGVAR_RANGE
        clip = [raw, self.constant("logvar.min", lo), self.constant("logvar.max", hi)]
        return mu, self.node("Clip", clip, "logvar.clipped")

    def decoder(self, z: str, c: Optional[str],
                config: Mapping[str, Any]) -> tuple[str, Optional[str]]:
        """(x_mean, x_logvar or None): x_logvar only with a learned variance."""
        g = self.first_input(z, c, "decoder")
        for i in range(len(config["decoder_hidden"])):
            g = self.linear(g, f"decoder.{i}", relu=True)
        out = self.linear(g, "output", relu=False)
        onnx_mean = likelihood_export(config["likelihood"]).onnx_mean
        assert onnx_mean is not None  # likelihood_export refuses a record without
        mean: str = onnx_mean(self, out)
        variance = config["variance"]
        if variance == "unit":
            return mean, None
        if variance == "sample":
            logvar = self.linear(g, "output_logvar", relu=False)
        else:  # "feature": one log-variance per feature, the same in every row
            vector = self.constant("likelihood.logvar", self.weights["likelihood.logvar"])
            rows = self.node("Shape", [mean], "x_mean.shape")
            logvar = self.node("Expand", [vector, rows], "likelihood.logvar.rows")
        floor = self.constant("x_logvar.min", LIMITS["gaussian_logvar_min"])
        return mean, self.node("Max", [logvar, floor], "x_logvar.value")

    def output(self, value: str, name: str) -> str:
        """Expose `value` under the public graph name `name`."""
        return self.node("Identity", [value], name)


def build_onnx(model: "VAE", part: str = "vae", opset: int = 17) -> Any:
    """The ONNX ModelProto of one part of `model` (see the module docstring)."""
    import onnx

    config = exportable_config(model, ONNX_ALSO)
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    opset = as_int(opset, "opset", minimum=MIN_OPSET)
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise ValueError(f"opset must be <= {newest} (the installed onnx {onnx.__version__} "
                         f"knows no later one), got {opset}")
    D, Z = config["n_features"], config["latent_dim"]
    g = _GraphBuilder(onnx, folded_weights(model))  # batch norm: inference affine folded

    def tensor(name: str, width: int) -> Any:
        return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["N", width])

    c = "c" if config["n_conditions"] else None
    g.levels = list(config.get("categorical_covariates", ()))
    widths = {"x": D, "z": Z, "c": config["n_conditions"], "mu": Z, "logvar": Z,
              "x_mean": D, "x_logvar": D}
    named: Iterable[tuple[Optional[str], str]]
    if part == "encoder":
        inputs, named = ["x"], zip(g.encoder("x", c, config), ("mu", "logvar"))
    else:
        inputs = ["z"] if part == "decoder" else ["x"]
        z = "z" if part == "decoder" else g.encoder("x", c, config)[0]  # z = mu
        named = zip(g.decoder(z, c, config), ("x_mean", "x_logvar"))
    outputs = [g.output(value, name) for value, name in named if value is not None]
    inputs += [c] if c else []
    codes = [onnx.helper.make_tensor_value_info("codes", onnx.TensorProto.INT64,
                                                ["N", len(g.levels)])] if g.rows else []
    graph = onnx.helper.make_graph(g.nodes, f"vaefast_{part}",
                                   [tensor(name, widths[name]) for name in inputs] + codes,
                                   [tensor(name, widths[name]) for name in outputs],
                                   initializer=g.initializers)
    opsets = [onnx.helper.make_opsetid("", opset)]
    # The oldest IR version that has this opset, not the installed onnx's
    # newest: older onnxruntime releases refuse IR versions they don't know.
    proto = onnx.helper.make_model(graph, producer_name="vaefast", opset_imports=opsets,
                                   ir_version=onnx.helper.find_min_ir_version_for(opsets))
    proto.doc_string = f"vaefast {part}: {model!r}"
    onnx.checker.check_model(proto, full_check=True)
    return proto


def to_onnx(model: "VAE", path: StrPath, part: str = "vae", opset: int = 17) -> Any:
    """Write one part of `model` as an ONNX file (see vaefast.interop.to_onnx)."""
    import onnx

    proto = build_onnx(model, part, opset)
    onnx.save_model(proto, os.fspath(path))
    return proto
