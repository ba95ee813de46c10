"""Float64 twin of the single-cell model with covariates in its layers (issue 23).

The architecture is scvi-tools 1.4's ``VAE`` (scvi/module/_vae.py,
scvi/nn/_base_components.py, read from the installed package):

- categorical covariates (the batch first) enter a layer as one-hot blocks
  of its input; ``FCLayers.inject_into_layer`` gives them to the first
  hidden layer, and to every hidden layer with ``deeply_inject_covariates``
  [True]. The encoder gets them only with ``encode_covariates`` [False].
  The output heads (``px_scale_decoder``, ``px_r_decoder``,
  ``px_dropout_decoder``) and the encoder's mean/variance heads are plain
  linear layers: no covariates. Here a layer that receives them computes
  ``act(x·W + b + onehot(codes)·T)``, T its (Σ levels, out) table (the C
  core's gather-add, csrc/covariates.c); with no hidden layer on a side the
  first layer there is the head, which then receives them.
- continuous covariates are joined to the input of the decoder's first
  layer (``decoder_input = cat([z, cont_covs])``) and, with
  ``encode_covariates``, of the encoder's (``cat((x_, cont_covs))``): one
  layer only, as in scvi-tools.
- the encoder reads log(1 + x) [``log_variational``]; the mean is
  ``library · softmax(rho)`` with the observed library (the row's total
  count); "nb" or "zinb" (zero-inflation logits from a second head); log θ
  per dispersion mode (vaefast/_spec/dispersion.py).

Output layer columns: [rho | pi ("zinb") | log θ ("gene-cell")], D each.
Parameters: a dict {"encoder": [layer], "head": layer, "decoder": [layer],
"output": layer, "log_theta": (rows, D) table or absent}, each layer a dict
{"W": (in, out), "b": (out,), "T": (Σ levels, out) if it receives
categorical covariates}. No dropout or normalisation here.
"""

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

from .._spec import dispersion as disp
from . import covariates as cov
from .count import count_loss
from .. import reference as ref

F64 = NDArray[np.float64]
Layer = dict[str, F64]


@dataclass(frozen=True)
class CovariateModel:
    """The shape of a model: widths, covariates, where they go, likelihood."""

    n_features: int
    hidden: tuple[int, ...]
    latent: int
    levels: tuple[int, ...] = ()
    n_continuous: int = 0
    deep: bool = True
    encode: bool = False
    likelihood: str = "zinb"
    dispersion: str = disp.DEFAULT
    n_labels: int = 0

    def __post_init__(self) -> None:
        if self.likelihood not in ("nb", "zinb"):
            raise ValueError(f"likelihood must be 'nb' or 'zinb', got {self.likelihood!r}")
        disp.get(self.dispersion, self.n_batch, self.n_labels)

    @property
    def n_batch(self) -> int:
        return self.levels[0] if self.levels else 1

    def receives(self, side: str) -> list[bool]:
        """Per layer of "encoder" (hidden layers, then the head) or "decoder"
        (hidden layers, then the output): does it receive the categorical
        covariates?"""
        n = len(self.hidden)
        on = bool(self.levels) and (side == "decoder" or self.encode)
        return [on and (i == 0 or (self.deep and i < n)) for i in range(n + 1)]

    def widths(self, side: str) -> list[tuple[int, int]]:
        """(in, out) of each layer of a side."""
        D, Z, C = self.n_features, self.latent, self.n_continuous
        if side == "encoder":
            dims = [D + (C if self.encode else 0), *self.hidden, 2 * Z]
        else:
            heads = 1 + (self.likelihood == "zinb") + disp.REGISTRY[self.dispersion].head
            dims = [Z + C, *reversed(self.hidden), heads * D]
        return list(zip(dims[:-1], dims[1:]))

    def init(self, rng: np.random.Generator, scale: float = 0.3) -> dict[str, Any]:
        """Random parameters (a test fixture: the model's own init is elsewhere)."""
        R = sum(self.levels)
        sides = {}
        for side in ("encoder", "decoder"):
            layers = []
            for (n_in, n_out), gets in zip(self.widths(side), self.receives(side)):
                L = {"W": scale * rng.standard_normal((n_in, n_out)),
                     "b": scale * rng.standard_normal(n_out)}
                if gets:
                    L["T"] = scale * rng.standard_normal((R, n_out))
                layers.append(L)
            sides[side] = layers
        params: dict[str, Any] = {"encoder": sides["encoder"][:-1], "head": sides["encoder"][-1],
                                  "decoder": sides["decoder"][:-1],
                                  "output": sides["decoder"][-1]}
        rows = disp.get(self.dispersion, self.n_batch, self.n_labels).table_rows(
            self.n_batch, self.n_labels)
        if rows:
            params["log_theta"] = rng.uniform(0.0, 1.5, (rows, self.n_features))
        return params


def _forward_side(layers: list[Layer], x: F64, codes: Optional[NDArray[Any]],
                  levels: tuple[int, ...]) -> list[F64]:
    """Activations [x, h1, …, last]; ReLU on all but the last layer."""
    acts = [x]
    for i, L in enumerate(layers):
        pre = acts[-1] @ L["W"] + L["b"]
        if "T" in L:
            assert codes is not None  # a table comes with the covariates
            pre = cov.gather_add(pre, codes, levels, L["T"])
        acts.append(pre if i == len(layers) - 1 else np.maximum(pre, 0))
    return acts


def _backward_side(layers: list[Layer], acts: list[F64], d_top: F64,
                   codes: Optional[NDArray[Any]], levels: tuple[int, ...]
                   ) -> tuple[list[Layer], F64]:
    """Gradients of each layer (W, b, T) and of the side's input."""
    grads: list[Layer] = [{} for _ in layers]
    d = d_top
    for i in reversed(range(len(layers))):
        dz = d if i == len(layers) - 1 else np.where(acts[i + 1] > 0, d, 0.0)
        grads[i] = {"W": acts[i].T @ dz, "b": dz.sum(axis=0)}
        if "T" in layers[i]:
            assert codes is not None
            grads[i]["T"] = cov.scatter_add(dz, codes, levels)
        d = dz @ layers[i]["W"].T
    return grads, d


def _with(a: NDArray[Any], cont: Optional[F64], on: bool) -> NDArray[Any]:
    """[a | cont] when `on` and there are continuous covariates, else a."""
    return np.concatenate([a, cont], axis=1) if on and cont is not None and cont.shape[1] else a


def loss_and_grad(spec: CovariateModel, params: dict[str, Any], x: F64,
                  codes: Optional[NDArray[Any]], cont: Optional[F64],
                  labels: Optional[NDArray[Any]],
                  eps: F64, beta: float = 1.0) -> tuple[float, F64, dict[str, Any]]:
    """Batch-mean negative ELBO, the per-row negative ELBO and the gradients
    (shaped like params) for noise eps (B, Z). codes (B, K) in
    [0, levels[k]); cont (B, n_continuous); labels (B,) for "gene-label"."""
    B, D = x.shape
    lv = spec.levels
    d = disp.get(spec.dispersion, spec.n_batch, spec.n_labels)
    enc_layers = [*params["encoder"], params["head"]]
    x_in: F64 = np.log1p(x)
    enc = _forward_side(enc_layers, _with(x_in, cont, spec.encode), codes, lv)
    mu, logvar = ref.split_head(enc[-1])
    z = ref.reparam_forward(mu, logvar, eps)
    dec_layers = [*params["decoder"], params["output"]]
    dec = _forward_side(dec_layers, _with(z, cont, True), codes, lv)
    out = dec[-1]
    pi = out[:, D:2 * D] if spec.likelihood == "zinb" else None
    # each row's log θ table row: its batch or label code (None: no table or one row)
    row = disp.row_codes(d, B, None if codes is None else codes[:, 0], labels, spec.n_batch,
                         spec.n_labels)
    if d.head:
        log_theta = out[:, -D:]
    elif d.per == "gene":
        log_theta = params["log_theta"][0]
    else:
        log_theta = params["log_theta"][row]
    scale = 1.0 / B
    recon, drho, dlt, dpi = count_loss(x, out[:, :D], x.sum(axis=1), log_theta, pi,
                                       spec.likelihood, scale)
    kl = ref.kl_normal(mu, logvar)
    per_row = recon + beta * kl
    blocks = [drho] + ([dpi] if dpi is not None else [])
    if d.head:  # log θ's head: its gradient is the loss's, per element
        assert dlt is not None
        blocks.append(dlt)
    d_out: F64 = np.concatenate(blocks, axis=1)
    dec_grads, dz_in = _backward_side(dec_layers, dec, d_out, codes, lv)
    dmu, dlv = ref.reparam_backward(mu, logvar, eps, dz_in[:, :spec.latent], beta * scale)
    raw = enc[-1][:, spec.latent:]
    dlv = np.where((raw >= ref.LOGVAR_MIN) & (raw <= ref.LOGVAR_MAX), dlv, 0.0)
    enc_grads, _ = _backward_side(enc_layers, enc, np.concatenate([dmu, dlv], axis=1), codes, lv)
    grads: dict[str, Any] = {"encoder": enc_grads[:-1], "head": enc_grads[-1],
                             "decoder": dec_grads[:-1], "output": dec_grads[-1]}
    assert dlt is not None  # NB and ZINB have log θ
    if d.per == "gene":
        grads["log_theta"] = dlt.reshape(1, D)
    elif row is not None:
        grads["log_theta"] = cov.scatter_add(dlt, row.reshape(-1, 1), [len(params["log_theta"])])
    return float(per_row.mean()), per_row, grads


def rounded_to_float32(params: Any) -> Any:
    """params (or its gradients) rounded to float32, kept in float64: the
    values a float32 model holds, for comparing the two on equal weights."""
    if isinstance(params, list):
        return [rounded_to_float32(p) for p in params]
    if isinstance(params, dict):
        return {k: rounded_to_float32(v) for k, v in params.items()}
    return params.astype(np.float32).astype(np.float64)


def vae_weights(spec: CovariateModel, params: dict[str, Any]) -> dict[str, NDArray[np.float32]]:
    """params (or its gradients) under the keys of ``vaefast.VAE.get_weights``
    (weights (in, out); the output layer split into its heads; log θ as
    ``likelihood.log_theta`` for "gene", ``likelihood.log_theta_table``
    for a table mode), as float32."""
    Z, D = spec.latent, spec.n_features
    out: dict[str, Any] = {}

    def put(key: str, L: Layer, cols: "slice[Any, Any, Any]" = slice(None)) -> None:
        out[f"{key}.weight"] = L["W"][:, cols]
        out[f"{key}.bias"] = L["b"][cols]
        if "T" in L:
            out[f"{key}.covariates"] = L["T"][:, cols]

    for i, L in enumerate(params["encoder"]):
        put(f"encoder.{i}", L)
    put("mu", params["head"], slice(0, Z))
    put("logvar", params["head"], slice(Z, 2 * Z))
    for i, L in enumerate(params["decoder"]):
        put(f"decoder.{i}", L)
    heads = ["output"] + (["output_pi"] if spec.likelihood == "zinb" else [])
    heads += ["output_log_theta"] if disp.REGISTRY[spec.dispersion].head else []
    for k, key in enumerate(heads):
        put(key, params["output"], slice(k * D, (k + 1) * D))
    if spec.dispersion == disp.DEFAULT:
        out["likelihood.log_theta"] = params["log_theta"][0]
    elif "log_theta" in params:
        out["likelihood.log_theta_table"] = params["log_theta"]
    return {k: np.asarray(v, np.float32) for k, v in out.items()}
