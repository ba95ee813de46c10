"""The VAE's parameter layout, stated once.

The C core (csrc/vae*.c) holds every parameter in one float32 buffer; this
module says what lives where in it, how the public weight dict maps onto it,
and how a fresh model is initialised. `VAE` checks at construction that the
C side computed the same offsets (``VAECore.layer_offsets``), so the two can
never drift apart silently.

Buffer order (forward order; each layer is W (in×out, row-major) then b (out))::

    encoder.i   (D + C) → h1 → … → hE        ReLU; rows [D, D+C) of encoder.0's W
                                             (or of the head's, with no encoder
                                             layer) multiply the conditions c
    head        hE → 2Z                      columns [0, Z) mu, [Z, 2Z) logvar
    decoder.i   (Z + C) → g1 → … → gG        ReLU; rows [Z, Z+C) multiply c
    output      gG → D, or gG → 2D           mean/logits; with variance="sample"
                                             columns [D, 2D) are the log-variance,
                                             for "zinb" the zero-inflation logits
    likelihood  D floats, only for variance="feature" (the log-variance) and
                negative_binomial, scvi_nb and zinb (log θ, the inverse
                dispersion, per gene)

    covariates  per layer receiving categorical covariates, in forward order,
                its table T (Σ levels × out, row-major; ``{key}.covariates``,
                split like the layer's weight): a row's pre-activation gains
                T[off_k + code_k] for each covariate k (csrc/covariates.c).
                The decoder's first layer always receives them, its other
                hidden layers with ``deep``; the encoder's the same way with
                ``encode`` (scVI's FCLayers.inject_into_layer; the head or
                output layer of a side without hidden layers is its first)

    dispersion  only with dispersion="gene-batch"/"gene-label": the log θ table
                (rows × D, ``likelihood.log_theta_table``; csrc/vae_dispersion.c);
                "gene-cell" instead widens the output layer by a last block of D
                columns (``output_log_theta``); neither has the per-gene vector

    batch norm  per batch-normalised hidden layer, in forward order, its scale
                then its shift (width each; ``{layer}.batch_norm.weight/bias``),
                only with use_batch_norm (csrc/vae_norm.c)

C = n_conditions (0 for an unconditional model: the layout is then exactly the
one of format version 1).
"""

import math
from typing import Any, Callable, Mapping, Sequence, TypeVar

import numpy as np
from numpy.typing import NDArray

from .._typing import F32
from . import dispersion as _dispersion, likelihoods

_D = TypeVar("_D", bound=np.generic)



class Layout:
    """Where each layer's weights live in the flat parameter buffer.

    Attributes
    ----------
    layers : list of (name, n_in, n_out, w_offset, b_offset)
        In buffer order.
    extra : (name, offset, size) or None
        The per-feature likelihood parameters after the last layer.
    theta_table : (offset, rows)
        The log θ table of a dispersion mode with one (rows 0 otherwise).
    n_params : int
    """

    def __init__(self, n_features: int, hidden: Sequence[int], latent_dim: int,
                 decoder_hidden: Sequence[int], n_conditions: int = 0,
                 likelihood: str = likelihoods.DEFAULT, variance: str = "unit",
                 batch_norm: Sequence[tuple[str, int]] = (),
                 categorical: Sequence[int] = (), deep: bool = True,
                 encode: bool = False, dispersion: str = _dispersion.DEFAULT,
                 theta_rows: int = 0) -> None:
        D, Z, C = n_features, latent_dim, n_conditions
        self.latent_dim, self.n_features = Z, D
        self.variance = variance
        widths = []
        prev = D + C
        for i, h in enumerate(hidden):
            widths.append((f"encoder.{i}", prev, h))
            prev = h
        widths.append(("head", prev, 2 * Z))
        prev = Z + C
        for i, h in enumerate(decoder_hidden):
            widths.append((f"decoder.{i}", prev, h))
            prev = h
        self.heads = likelihoods.REGISTRY[likelihood].output_heads(variance)
        if _dispersion.REGISTRY[dispersion].head:
            self.heads += ("output_log_theta",)
        widths.append(("output", prev, len(self.heads) * D))
        self.layers: list[tuple[str, int, int, int, int]] = []
        off = 0
        for name, n_in, n_out in widths:
            self.layers.append((name, n_in, n_out, off, off + n_in * n_out))
            off += n_in * n_out + n_out
        extra_key = (likelihoods.REGISTRY[likelihood].extra_param_key(variance)
                     if dispersion == _dispersion.DEFAULT else None)
        self.extra = (extra_key, off, D) if extra_key else None
        off += D if extra_key else 0
        # layer index -> offset of its covariate table (cat_rows × n_out)
        self.cat_rows = int(sum(categorical))
        self.tables: dict[int, int] = {}
        for li in self._receiving(len(hidden), len(decoder_hidden), deep, encode):
            self.tables[li] = off
            off += self.cat_rows * self.layers[li][2]
        # (offset, rows) of the log θ table, rows 0 without one
        self.theta_table = (off, theta_rows)
        off += theta_rows * D
        # (key prefix, offset of the scale, width) of each batch-norm layer
        self.norms: list[tuple[str, int, int]] = []
        for name, width in batch_norm:
            self.norms.append((f"{name}.batch_norm", off, width))
            off += 2 * width
        self.n_params = off

    def _receiving(self, n_enc: int, n_dec: int, deep: bool, encode: bool) -> list[int]:
        """Indices of the layers with a covariate table (none without covariates)."""
        if not self.cat_rows:
            return []
        enc = [i for i in range(n_enc + 1) if encode and (i == 0 or (deep and i < n_enc))]
        dec = [n_enc + 1 + i for i in range(n_dec + 1) if i == 0 or (deep and i < n_dec)]
        return enc + dec

    # ------------------------------------------------------------ naming
    def _pieces(self) -> list[tuple[str, int, str, "slice[int, int, None]"]]:
        """(key, layer index, 'W'/'b', column slice) for every public key."""
        Z, D = self.latent_dim, self.n_features
        out = []
        splits: tuple[tuple[str, "slice[int, int, None]"], ...]
        for li, (name, _, n_out, _, _) in enumerate(self.layers):
            if name == "head":
                splits = (("mu", slice(0, Z)), ("logvar", slice(Z, 2 * Z)))
            elif name == "output":
                splits = tuple((key, slice(k * D, (k + 1) * D))
                               for k, key in enumerate(self.heads))
            else:
                splits = ((name, slice(0, n_out)),)
            for key, cols in splits:
                out.append((f"{key}.weight", li, "W", cols))
                out.append((f"{key}.bias", li, "b", cols))
                if li in self.tables:
                    out.append((f"{key}.covariates", li, "T", cols))
        return out

    def _view(self, flat: NDArray[_D], li: int, part: str,
              cols: "slice[int, int, None]") -> NDArray[_D]:
        _, n_in, n_out, w, b = self.layers[li]
        if part == "W":
            return flat[w:w + n_in * n_out].reshape(n_in, n_out)[:, cols]
        if part == "T":
            t = self.tables[li]
            return flat[t:t + self.cat_rows * n_out].reshape(self.cat_rows, n_out)[:, cols]
        return flat[b:b + n_out][cols]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Public key -> shape, in buffer order."""
        shapes: dict[str, tuple[int, ...]] = {}
        for key, li, part, cols in self._pieces():
            n_in, width = self.layers[li][1], cols.stop - cols.start
            rows = {"W": n_in, "T": self.cat_rows}.get(part)
            shapes[key] = (width,) if rows is None else (rows, width)
        scratch = np.zeros(self.n_params, np.float32)
        shapes.update((k, v.shape) for k, v in self._loose_views(scratch).items())
        return shapes

    def _loose_views(self, flat: NDArray[_D]) -> dict[str, NDArray[_D]]:
        """Public key -> view of flat, for the parameters outside the layers:
        the per-feature vector, the log θ table, the batch-norm scales and
        shifts."""
        views = {} if self.extra is None else {
            self.extra[0]: flat[self.extra[1]:self.extra[1] + self.extra[2]]}
        off, rows = self.theta_table
        if rows:
            views["likelihood.log_theta_table"] = flat[off:off + rows * self.n_features].reshape(
                rows, self.n_features)
        views.update((k, v) for key, off, w in self.norms
                     for k, v in ((f"{key}.weight", flat[off:off + w]),
                                  (f"{key}.bias", flat[off + w:off + 2 * w])))
        return views

    def named_from_flat(self, flat: F32) -> dict[str, F32]:
        """The flat buffer -> dict of public key -> float32 copy."""
        named = {key: self._view(flat, li, part, cols).copy()
                 for key, li, part, cols in self._pieces()}
        named.update((k, v.copy()) for k, v in self._loose_views(flat).items())
        return named

    def flat_from_named(self, weights: Mapping[str, object],
                        convert: Callable[[object, str], F32]) -> F32:
        """Dict of public key -> array -> the flat float32 buffer.

        convert(value, name) checks one array and returns it as float32 (the
        caller's argument checks: this module stays plain data)."""
        if not isinstance(weights, dict):
            raise TypeError(f"weights must be a dict, got {type(weights).__name__}")
        shapes = self.shapes()
        missing = [k for k in shapes if k not in weights]
        extra = [k for k in weights if k not in shapes]
        if missing:
            raise KeyError(f"weights is missing key {missing[0]!r}")
        if extra:
            raise KeyError(f"weights has unexpected key {extra[0]!r}")
        arrays: dict[str, F32] = {}
        for k, shape in shapes.items():
            a = convert(weights[k], f"weights[{k!r}]")
            if a.shape != shape:
                raise ValueError(f"weights[{k!r}] must have shape {shape}, got {a.shape}")
            arrays[k] = a
        flat = np.empty(self.n_params, dtype=np.float32)
        for key, li, part, cols in self._pieces():
            self._view(flat, li, part, cols)[...] = arrays[key]
        for k, view in self._loose_views(flat).items():
            view[...] = arrays[k]
        return flat

    def offsets(self) -> list[tuple[int, int, int, int]]:
        """[(n_in, n_out, w_offset, b_offset)] per layer: what the C core must agree on."""
        return [(n_in, n_out, w, b) for _, n_in, n_out, w, b in self.layers]

    def table_offsets(self) -> list[tuple[int, int]]:
        """[(offset, rows)] of each layer's covariate table, (0, 0) if none:
        what the C core's cov_table must agree on."""
        return [(self.tables[li], self.cat_rows) if li in self.tables else (0, 0)
                for li in range(len(self.layers))]

    # ------------------------------------------------------------ init
    def init(self, seed: "int | np.random.SeedSequence",
             dtype: "type[np.floating[Any]]" = np.float32) -> "NDArray[np.floating[Any]]":
        """Fresh parameters as a flat buffer.

        Every layer draws W then b from U(−1/√in, 1/√in) (PyTorch nn.Linear's
        default), layer after layer in forward order from
        ``np.random.default_rng(seed)``. The per-feature likelihood
        parameters start at 0 (unit variance; θ = 1) and draw nothing, as
        do the batch-norm scales (1) and shifts (0), torch's defaults. The
        covariate tables draw after all layers, in forward order, from
        U(−1/√(in + Σ levels), ·): scVI's layer is one nn.Linear over the
        input joined with the one-hot covariates, whose fan-in that is. The
        log θ table (dispersion "gene-batch"/"gene-label") draws last, from
        N(0, 1) as scVI's px_r does.
        """
        rng = np.random.default_rng(seed)
        flat = np.zeros(self.n_params, dtype=dtype)
        for _, n_in, n_out, w, b in self.layers:
            W, bias = init_layer(rng, n_in, n_out, dtype)
            flat[w:w + n_in * n_out] = W.ravel()
            flat[b:b + n_out] = bias
        for li, t in self.tables.items():
            _, n_in, n_out, _, _ = self.layers[li]
            bound = 1.0 / math.sqrt(n_in + self.cat_rows)
            table = rng.uniform(-bound, bound, size=self.cat_rows * n_out)
            flat[t:t + table.size] = table.astype(dtype)
        off, rows = self.theta_table  # scVI: torch.randn (scvi/module/_vae.py)
        flat[off:off + rows * self.n_features] = rng.standard_normal(
            rows * self.n_features).astype(dtype)
        for key, view in self._loose_views(flat).items():
            if key.endswith(".batch_norm.weight"):
                view[...] = 1.0
        return flat


def init_layer(rng: np.random.Generator, n_in: int, n_out: int,
               dtype: "type[np.floating[Any]]") -> "tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]":
    """PyTorch nn.Linear's default: W (in×out), b (out) ~ U(−1/√in, 1/√in)."""
    bound = 1.0 / math.sqrt(n_in)
    W = rng.uniform(-bound, bound, size=(n_in, n_out)).astype(dtype)
    b = rng.uniform(-bound, bound, size=n_out).astype(dtype)
    return W, b
