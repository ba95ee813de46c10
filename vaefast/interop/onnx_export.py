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
  log-variance floored at -10 as in vaefast's likelihood. With a
  dispersion mode other than "gene" (the NB/ZINB θ: "gene-batch",
  "gene-label", "gene-cell") also ``log_theta`` (N, n_features), each row's
  log θ clipped to [-20, 20] as vaefast's kernels clip it: a Gather of the
  ``likelihood.log_theta_table`` rows by the code column (table modes) or
  the ``output_log_theta`` head's Gemm ("gene-cell").
* ``vae``: input ``x`` -> the decoder's outputs through z = mu (no
  sampling); what ``VAE.reconstruct`` computes.

A conditional model (n_conditions = C > 0) has a second input ``c`` (N, C),
concatenated after x (after log(1 + x)) and after z, where vaefast's first
encoder and decoder layers read it (the last C rows of their weights).

A model with K categorical covariates has an input ``codes`` (N, K) int64;
each layer that receives them adds Gather(T, codes + offsets) summed over
the K covariates (ReduceSum) to its Gemm, T its ``{layer}.covariates``
table. The graph does not check the codes' range (onnxruntime's Gather
refuses an index out of the table). With dispersion="gene-label" and
``n_labels``, ``codes`` is (N, K + 1): the labels, last, pick θ's table row
and no layer reads them (the layers Slice off the first K columns).

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
from ._dispersion_spec import HEAD as THETA_HEAD, TABLE_KEY, DispersionSpec, dispersion_spec
from ._likelihoods import likelihood_export
from ._model_spec import ONNX_ALSO, exportable_config, folded_weights

PARTS = ("encoder", "decoder", "vae")
MIN_OPSET = 13  # Gemm-13 and Clip with min/max inputs


class _GraphBuilder:
    """Collects nodes and initializers; names follow get_weights()."""

    def __init__(self, onnx: Any, weights: Mapping[str, NDArray[Any]],
                 dispersion: DispersionSpec) -> None:
        self.onnx, self.h, self.weights = onnx, onnx.helper, weights
        self.nodes: list[Any] = []  # onnx NodeProto (onnx: optional, untyped here)
        self.initializers: list[Any] = []  # onnx TensorProto
        self.dispersion = dispersion
        # of the categorical covariates the layers read (the input "codes"
        # may carry the labels after them: dispersion.code_levels)
        n_layer_codes = len(dispersion.code_levels) - (1 if dispersion.side else 0)
        self.levels = list(dispersion.code_levels[:n_layer_codes])
        self.rows: Optional[str] = None  # codes + offsets, once a layer reads them
        self.uses_codes = False  # the part has an input "codes"

    def int_constant(self, name: str, array: ArrayLike) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(
            np.asarray(array, dtype=np.int64), name))
        return name

    def codes(self) -> str:
        """The input ``codes`` (N, columns) int64, marked as used."""
        self.uses_codes = True
        return "codes"

    def table_rows(self) -> str:
        """The stacked tables' rows of the input ``codes`` (N, K) int64: added
        to the graph by the first layer that reads them (the part has an input
        ``codes`` exactly then)."""
        if self.rows is None:
            offsets = np.cumsum([0] + self.levels[:-1])
            for name, value in (("codes.offsets", offsets), ("codes.axis", [1])):
                self.int_constant(name, value)
            codes = self.codes()
            if self.dispersion.side:  # the labels' last column is θ's alone
                ends = [self.int_constant(f"codes.layers.{k}", [v])
                        for k, v in (("starts", 0), ("ends", len(self.levels)))]
                codes = self.node("Slice", [codes, *ends, "codes.axis"], "codes.layers")
            self.rows = self.node("Add", [codes, "codes.offsets"], "codes.rows")
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

    def log_theta(self, g: str) -> Optional[str]:
        """Each row's clipped log θ from the last hidden value `g`, or None for
        dispersion "gene" (or no θ)."""
        spec = self.dispersion
        if spec.head:
            raw = self.linear(g, THETA_HEAD, relu=False)
        elif spec.table:
            table = self.constant(TABLE_KEY, self.weights[TABLE_KEY])
            assert spec.column is not None  # a table mode names the code column it reads
            column = self.int_constant("log_theta.column", spec.column)  # a scalar: (N,)
            code = self.node("Gather", [self.codes(), column], "log_theta.code", axis=1)
            raw = self.node("Gather", [table, code], "log_theta.rows", axis=0)
        else:
            return None
        bounds = [self.constant(f"log_theta.{k}", LIMITS[f"log_theta_{k}"])
                  for k in ("min", "max")]
        return self.node("Clip", [raw, *bounds], "log_theta.value")

    def decoder(self, z: str, c: Optional[str],
                config: Mapping[str, Any]) -> tuple[str, Optional[str], Optional[str]]:
        """(x_mean, x_logvar or None, log_theta or None): x_logvar only with a
        learned variance, log_theta only with a per-row θ."""
        g = self.first_input(z, c, "decoder")
        for i in range(len(config["decoder_hidden"])):
            g = self.linear(g, f"decoder.{i}", relu=True)
        out = self.linear(g, "output", relu=False)
        onnx_mean = likelihood_export(config["likelihood"]).onnx_mean
        assert onnx_mean is not None  # likelihood_export refuses a record without
        mean: str = onnx_mean(self, out)
        variance = config["variance"]
        if variance == "unit":
            return mean, None, self.log_theta(g)
        if variance == "sample":
            logvar = self.linear(g, "output_logvar", relu=False)
        else:  # "feature": one log-variance per feature, the same in every row
            vector = self.constant("likelihood.logvar", self.weights["likelihood.logvar"])
            rows = self.node("Shape", [mean], "x_mean.shape")
            logvar = self.node("Expand", [vector, rows], "likelihood.logvar.rows")
        floor = self.constant("x_logvar.min", LIMITS["gaussian_logvar_min"])
        return mean, self.node("Max", [logvar, floor], "x_logvar.value"), None

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
    spec = dispersion_spec(config)
    g = _GraphBuilder(onnx, folded_weights(model), spec)  # batch norm: inference affine folded

    def tensor(name: str, width: int) -> Any:
        return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["N", width])

    c = "c" if config["n_conditions"] else None
    widths = {"x": D, "z": Z, "c": config["n_conditions"], "mu": Z, "logvar": Z,
              "x_mean": D, "x_logvar": D, "log_theta": D}
    named: Iterable[tuple[Optional[str], str]]
    if part == "encoder":
        inputs, named = ["x"], zip(g.encoder("x", c, config), ("mu", "logvar"))
    else:
        inputs = ["z"] if part == "decoder" else ["x"]
        z = "z" if part == "decoder" else g.encoder("x", c, config)[0]  # z = mu
        named = zip(g.decoder(z, c, config), ("x_mean", "x_logvar", "log_theta"))
    outputs = [g.output(value, name) for value, name in named if value is not None]
    inputs += [c] if c else []
    codes = [onnx.helper.make_tensor_value_info("codes", onnx.TensorProto.INT64,
                                                ["N", len(spec.code_levels)])] \
        if g.uses_codes else []
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
