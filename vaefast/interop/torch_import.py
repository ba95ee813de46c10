"""PyTorch -> vaefast: read the weights of a PyTorch VAE into a VAE.

A source is first read into a _Plan (the layers in vaefast's order, torch's
(out, in) weights), whatever its form (module, state_dict, tuple of
modules); the plan's shapes are then checked in one place and turned into a
VAE. Every rejection names the layer (or key) and says why. torch is
imported only when a module is given: a state_dict of NumPy arrays needs no
torch at all.
"""

from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from ..model import VAE

F32 = NDArray[np.float32]
# [layer, followed by a ReLU] of a walked Sequential
_Walked = list[list[Any]]

from .._spec.likelihoods import BERNOULLI, NAMES as LIKELIHOODS
from ._model_spec import extra_param_name, layer_names

EXAMPLE_LAYOUT = ("fc1", "fc21", "fc22", "fc3", "fc4")  # PyTorch examples' VAE
HEAD_NAMES = (("mu", "logvar"), ("fc_mu", "fc_logvar"), ("fc_mu", "fc_var"))
_EXAMPLE_LIKELIHOOD: dict[str, Any] = dict(
    likelihood=BERNOULLI.name, fixed=True,
    why="the PyTorch examples VAE decodes with a sigmoid")


class _Layer:
    """One Linear layer: `label` for messages, weight (out, in), bias (out,)."""

    def __init__(self, label: str, weight: object, bias: object) -> None:
        self.label = label
        self.weight = _as_matrix(weight, f"{label}.weight", 2)
        if bias is None:  # a bias-free Linear is the same layer with bias 0
            bias = np.zeros(self.weight.shape[0], np.float32)
        self.bias = _as_matrix(bias, f"{label}.bias", 1)
        if self.bias.shape[0] != self.weight.shape[0]:
            raise ValueError(f"{label}: bias has {self.bias.shape[0]} entries but the "
                             f"weight has {self.weight.shape[0]} output rows")

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])


class _Plan:
    """encoder hidden layers, mu and logvar heads, decoder hidden layers,
    output layer, and what the source says about likelihood and beta.

    `why` explains `likelihood`; `fixed` means the source's structure (a
    sigmoid on the output) rules out any other likelihood. `extra` holds the
    per-feature likelihood parameters (state_dict keys "likelihood.*")."""

    def __init__(self, encoder: list[_Layer], mu: _Layer, logvar: _Layer,
                 decoder: list[_Layer], output: _Layer, likelihood: Optional[str] = None,
                 why: str = "", fixed: bool = False, beta: Optional[float] = None) -> None:
        self.encoder, self.mu, self.logvar = encoder, mu, logvar
        self.decoder, self.output = decoder, output
        self.likelihood, self.why, self.fixed, self.beta = likelihood, why, fixed, beta
        self.extra: dict[str, F32] = {}


def _as_matrix(value: Any, label: str, ndim: int) -> F32:
    if hasattr(value, "detach"):  # a torch tensor or parameter
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{label} must hold floating-point numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{label} must be {ndim}-dimensional, got shape {arr.shape}")
    return arr.astype(np.float32)


# ------------------------------------------------------------- modules
def _linear(module: Any, label: str) -> _Layer:
    import torch

    if not isinstance(module, torch.nn.Linear):
        raise TypeError(f"{label} is {type(module).__name__}: vaefast maps only "
                        "torch.nn.Linear layers here")
    return _Layer(label, module.weight, module.bias)


def _walk_sequential(seq: Any, label: str) -> tuple[_Walked, bool]:
    """[(_Layer, followed_by_relu)] and whether a final Sigmoid ends `seq`."""
    import torch

    if not isinstance(seq, torch.nn.Sequential):
        raise TypeError(f"{label} is {type(seq).__name__}: expected a torch.nn.Sequential "
                        "of Linear and ReLU layers")
    children = list(seq)
    layers: _Walked = []
    sigmoid = False
    for i, child in enumerate(children):
        where = f"{label}[{i}]"
        if isinstance(child, torch.nn.Linear):
            layers.append([_linear(child, where), False])
        elif isinstance(child, torch.nn.ReLU):
            if i == 0 or not isinstance(children[i - 1], torch.nn.Linear):
                raise ValueError(f"{where} is a ReLU that does not follow a Linear layer")
            layers[-1][1] = True
        elif (isinstance(child, torch.nn.Sigmoid) and i == len(children) - 1
              and i > 0 and isinstance(children[i - 1], torch.nn.Linear)):
            sigmoid = True
        else:
            raise ValueError(f"{where} is {type(child).__name__}: vaefast maps only Linear "
                             "and ReLU layers (and a final Sigmoid after the decoder's "
                             "last Linear)")
    return layers, sigmoid


def _hidden(layers: _Walked, part: str) -> list[_Layer]:
    """The _Layers of (layer, followed_by_relu) pairs that must all be ReLU'd."""
    for layer, relu in layers:
        if not relu:
            raise ValueError(f"{layer.label} (Linear) is not followed by a ReLU: vaefast's "
                             f"{part} hidden layers all are")
    return [layer for layer, _ in layers]


def _last_linear(layers: _Walked, label: str, role: str, why: str) -> _Layer:
    """Split layers into the hidden ones (all ReLU'd) and the last Linear, which
    serves as `role` and must not be followed by a ReLU (`why` says why)."""
    if not layers:
        raise ValueError(f"{label} has no Linear layer to serve as {role}")
    last, relu = layers[-1]
    if relu:
        raise ValueError(f"{last.label} is followed by a ReLU, but as {role} {why}")
    last_layer: _Layer = last
    return last_layer


def _split_encoder(layers: _Walked, label: str,
                   joined: bool) -> tuple[list[_Layer], Optional[_Layer]]:
    """Encoder hidden layers (+ the joined head when `joined`): every hidden
    Linear is followed by a ReLU, a joined head is not."""
    hidden = _hidden(layers[:-1] if joined else layers, "encoder")
    if not joined:
        return hidden, None
    return hidden, _last_linear(layers, label, "the joined mu/logvar head",
                                "(no separate mu/logvar modules) it must be the last layer")


def _split_decoder(layers: _Walked, label: str) -> tuple[list[_Layer], _Layer]:
    """Decoder hidden layers (all ReLU'd) and the output layer (not)."""
    output = _last_linear(layers, label, "the decoder's output layer",
                          "(the decoder's last Linear) it must not be")
    return _hidden(layers[:-1], "decoder"), output


def _split_joined(head: _Layer, n_latent_hint: Optional[int]) -> tuple[_Layer, _Layer]:
    if head.n_out % 2:
        raise ValueError(f"{head.label} has {head.n_out} outputs: a joined mu/logvar head "
                         "needs an even number (mu first, logvar second)")
    Z = head.n_out // 2
    if n_latent_hint is not None and n_latent_hint != Z:
        raise ValueError(f"{head.label} has {head.n_out} outputs = 2·{Z}, but the decoder "
                         f"takes {n_latent_hint} latent inputs")
    return (_Layer(f"{head.label}[:{Z}] (mu)", head.weight[:Z], head.bias[:Z]),
            _Layer(f"{head.label}[{Z}:] (logvar)", head.weight[Z:], head.bias[Z:]))


def _plan_from_sequentials(encoder: Any, decoder: Any, heads: Optional[Sequence[Any]],
                           names: Sequence[str]) -> _Plan:
    """`heads` = (mu, logvar) modules or None (joined head in the encoder)."""
    enc_layers, enc_sigmoid = _walk_sequential(encoder, names[0])
    if enc_sigmoid:
        raise ValueError(f"{names[0]}[{len(encoder) - 1}] is Sigmoid: vaefast's encoder "
                         "has ReLU hidden layers only")
    dec_layers, sigmoid = _walk_sequential(decoder, names[-1])
    dec_hidden, output = _split_decoder(dec_layers, names[-1])
    hidden, head = _split_encoder(enc_layers, names[0], joined=heads is None)
    if heads is None:
        assert head is not None  # _split_encoder(joined=True) returns one or raises
        mu, logvar = _split_joined(head, dec_layers[0][0].n_in)
    else:
        mu, logvar = _linear(heads[0], names[1]), _linear(heads[1], names[2])
    if not sigmoid:
        return _Plan(hidden, mu, logvar, dec_hidden, output)
    return _Plan(hidden, mu, logvar, dec_hidden, output, likelihood=BERNOULLI.name, fixed=True,
                 why=f"{names[-1]} ends in Sigmoid (a Bernoulli mean)")


def _plan_from_module(module: Any) -> _Plan:
    import torch

    if all(isinstance(getattr(module, n, None), torch.nn.Module) for n in EXAMPLE_LAYOUT):
        fc1, fc21, fc22, fc3, fc4 = (_linear(getattr(module, n), n) for n in EXAMPLE_LAYOUT)
        return _Plan([fc1], fc21, fc22, [fc3], fc4, **_EXAMPLE_LIKELIHOOD)
    if not (isinstance(getattr(module, "encoder", None), torch.nn.Module)
            and isinstance(getattr(module, "decoder", None), torch.nn.Module)):
        raise ValueError(f"{type(module).__name__} has neither the PyTorch examples VAE "
                         f"layout ({', '.join(EXAMPLE_LAYOUT)}) nor encoder and decoder "
                         "nn.Sequential attributes")
    heads: Optional[tuple[Any, Any]] = None
    names: tuple[str, ...] = ("encoder", "decoder")
    for mu_name, lv_name in HEAD_NAMES:
        if hasattr(module, mu_name) and hasattr(module, lv_name):
            heads = (getattr(module, mu_name), getattr(module, lv_name))
            names = ("encoder", mu_name, lv_name, "decoder")
            break
    return _plan_from_sequentials(module.encoder, module.decoder, heads, names)


def _plan_from_tuple(parts: Sequence[Any]) -> _Plan:
    if len(parts) == 2:
        return _plan_from_sequentials(parts[0], parts[1], None, ("source[0]", "source[1]"))
    if len(parts) == 4:
        return _plan_from_sequentials(parts[0], parts[3], (parts[1], parts[2]),
                                      tuple(f"source[{i}]" for i in range(4)))
    raise ValueError(f"source tuple must be (encoder, decoder) or (encoder, mu, logvar, "
                     f"decoder), got {len(parts)} items")


# ---------------------------------------------------------- state_dicts
def _state_layer(state: Mapping[str, Any], prefix: str, used: set[str]) -> _Layer:
    w, b = f"{prefix}.weight", f"{prefix}.bias"
    if w not in state:
        raise KeyError(f"state_dict has no {w!r}")
    used.update(k for k in (w, b) if k in state)
    return _Layer(prefix, state[w], state.get(b))


def _sequential_prefixes(state: Mapping[str, Any], name: str) -> list[str]:
    """'name.k' for every 'name.k.weight' key, in numeric order of k."""
    ks: list[int] = []
    for key in state:
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == name and parts[2] == "weight":
            if not parts[1].isdigit():
                raise ValueError(f"state_dict key {key!r}: expected {name}.<index>.weight")
            ks.append(int(parts[1]))
    return [f"{name}.{k}" for k in sorted(ks)]


def _plan_from_state_dict(state: Mapping[str, Any]) -> _Plan:
    """ReLU is assumed between Linear layers (a state_dict holds no activations)."""
    used: set[str] = set()
    if all(f"{n}.weight" in state for n in EXAMPLE_LAYOUT):
        layers = [_state_layer(state, n, used) for n in EXAMPLE_LAYOUT]
        plan = _Plan([layers[0]], layers[1], layers[2], [layers[3]], layers[4],
                     **_EXAMPLE_LIKELIHOOD)
    else:
        enc = [_state_layer(state, p, used) for p in _sequential_prefixes(state, "encoder")]
        dec = [_state_layer(state, p, used) for p in _sequential_prefixes(state, "decoder")]
        if not dec:
            raise ValueError("state_dict has neither the PyTorch examples VAE keys "
                             f"({', '.join(n + '.weight' for n in EXAMPLE_LAYOUT)}) nor "
                             "decoder.<index>.weight keys")
        heads = next(((m, lv) for m, lv in HEAD_NAMES
                      if f"{m}.weight" in state and f"{lv}.weight" in state), None)
        if heads:
            mu, logvar = (_state_layer(state, h, used) for h in heads)
        else:
            if not enc:
                raise ValueError("state_dict has no encoder.<index>.weight keys and no "
                                 "mu/logvar heads")
            mu, logvar = _split_joined(enc.pop(), dec[0].n_in)
        plan = _Plan(enc, mu, logvar, dec[:-1], dec[-1])
    plan.extra = {k: _as_matrix(v, k, 1) for k, v in state.items() if k.startswith("likelihood.")}
    used.update(plan.extra)
    extra = [k for k in state if k not in used]
    if extra:
        raise ValueError(f"state_dict key {extra[0]!r} belongs to no layer vaefast maps")
    return plan


# ------------------------------------------------------------- checking
# A conditional model's first layers take [x | c] and [z | c]; a state_dict
# or plain modules cannot say where c starts, so widths never line up.
_TO_TORCH_ONLY = ("(from_torch reads a conditional model, whose first layers take [x | c] "
                  "and [z | c], or an output layer of two heads (variance='sample', ZINB) "
                  "only from a to_torch module)")


def _check_chain(plan: _Plan) -> None:
    """Every layer's input width equals the previous layer's output width."""
    def chain(layers: Sequence[_Layer], n_in: int, source: str,
              hint: str = "") -> tuple[int, str]:
        for layer in layers:
            if layer.n_in != n_in:
                raise ValueError(f"{layer.label} takes {layer.n_in} inputs but {source} "
                                 f"gives {n_in}" + (f" {hint}" if layer.n_in > n_in else ""))
            n_in, source, hint = layer.n_out, layer.label, ""
        return n_in, source

    first = (plan.encoder or [plan.mu])[0]
    width, source = chain(plan.encoder, first.n_in, "the input")
    chain([plan.mu], width, source)
    chain([plan.logvar], width, source)
    if plan.mu.n_out != plan.logvar.n_out:
        raise ValueError(f"{plan.mu.label} gives {plan.mu.n_out} outputs but "
                         f"{plan.logvar.label} gives {plan.logvar.n_out}")
    width, source = chain(plan.decoder + [plan.output], plan.mu.n_out, plan.mu.label,
                          _TO_TORCH_ONLY)
    if width != first.n_in:
        raise ValueError(f"{plan.output.label} gives {width} outputs but the encoder takes "
                         f"{first.n_in} features {_TO_TORCH_ONLY}")


def _resolve_likelihood(plan: _Plan, likelihood: Optional[str]) -> str:
    if likelihood is None:
        if plan.likelihood is None:
            raise ValueError(f"likelihood must be given (one of {LIKELIHOODS}): the "
                             "source does not say what its decoder output means")
        return plan.likelihood
    if plan.fixed and likelihood != plan.likelihood:
        raise ValueError(f"likelihood={likelihood!r} contradicts the source: {plan.why}")
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    return likelihood


def _resolve_variance(plan: _Plan, likelihood: str) -> str:
    """"feature" when the source holds a per-feature log-variance, else "unit";
    checks the source's per-feature parameters are exactly the likelihood's."""
    variance = "feature" if "likelihood.logvar" in plan.extra else "unit"
    wanted = extra_param_name({"likelihood": likelihood, "variance": variance})
    for key in plan.extra:
        if key != wanted:
            raise ValueError(f"state_dict key {key!r} does not belong to a "
                             f"likelihood={likelihood!r} model")
    if wanted and wanted not in plan.extra:
        raise ValueError(f"likelihood={likelihood!r} needs its per-feature parameters "
                         f"{wanted!r} (n_features,): give a state_dict holding that key "
                         "or a to_torch module")
    return variance


def _from_to_torch_module(module: Any, config: Mapping[str, Any], likelihood: Optional[str],
                          beta: Optional[float], seed: int) -> "VAE":
    """The exact inverse of to_torch, for every configuration it exports."""
    from ..model import VAE
    from .torch_export import vaefast_weights

    if likelihood is not None and likelihood != config["likelihood"]:
        raise ValueError(f"likelihood={likelihood!r} contradicts the source: a to_torch "
                         f"module of a {config['likelihood']!r} model")
    # The Sequentials hold only Linear and ReLU where vaefast has them.
    _split_encoder(_walk_sequential(module.encoder, "encoder")[0], "encoder", joined=False)
    dec_layers, sigmoid = _walk_sequential(module.decoder, "decoder")
    _split_decoder(dec_layers, "decoder")
    if sigmoid:
        raise ValueError("decoder ends in Sigmoid: a to_torch module's decoder ends in the "
                         "output Linear (the mean is applied by decode)")
    model = VAE(**{**config, "seed": seed,
                   "beta": config["beta"] if beta is None else beta})
    model.set_weights(vaefast_weights(module))
    return model


def from_torch(source: Any, likelihood: Optional[str] = None, beta: Optional[float] = None,
               seed: int = 0) -> "VAE":
    """See vaefast.interop.from_torch."""
    from ..model import VAE

    if isinstance(source, dict) or (hasattr(source, "keys") and hasattr(source, "__getitem__")
                                    and not hasattr(source, "state_dict")):
        plan = _plan_from_state_dict(dict(source))
    elif isinstance(source, (tuple, list)):
        plan = _plan_from_tuple(source)
    elif hasattr(source, "state_dict") and hasattr(source, "named_modules"):
        config = getattr(source, "vaefast_config", None)
        if isinstance(config, dict):
            return _from_to_torch_module(source, config, likelihood, beta, seed)
        plan = _plan_from_module(source)
    else:
        raise TypeError("source must be a torch.nn.Module, a state_dict or a tuple of "
                        f"modules, got {type(source).__name__}")
    _check_chain(plan)
    likelihood = _resolve_likelihood(plan, likelihood)
    variance = _resolve_variance(plan, likelihood)
    model = VAE(plan.output.n_out, hidden=[l.n_out for l in plan.encoder],
                latent_dim=plan.mu.n_out, likelihood=likelihood,
                beta=(plan.beta if plan.beta is not None else 1.0) if beta is None else beta,
                seed=seed, decoder_hidden=[l.n_out for l in plan.decoder], variance=variance)
    names = layer_names(len(plan.encoder), len(plan.decoder))
    layers = plan.encoder + [plan.mu, plan.logvar] + plan.decoder + [plan.output]
    weights = {}
    for name, layer in zip(names, layers):
        weights[f"{name}.weight"] = np.ascontiguousarray(layer.weight.T)
        weights[f"{name}.bias"] = layer.bias
    weights.update(plan.extra)
    model.set_weights(weights)
    return model
