"""The categorical covariates of a to_torch module (vaefast/interop/torch_export.py).

A layer that receives them adds, to its Linear's output and before any
normalisation or ReLU (as vaefast's core, csrc/covariates.c, and scVI's
FCLayers, whose one-hot joins the Linear's input), the rows
T[off_k + codes[:, k]] of its table T (Σ levels, out), summed over the
covariates k: an embedding lookup per covariate, not a one-hot product.
Which layers receive them is vaefast/_spec/layout.py's rule (``tables``).
With dispersion="gene-label" and ``n_labels`` the codes carry one more,
last column, the labels, which no layer reads (vaefast/interop/torch_dispersion.py).
Imported only with torch.
"""

from typing import Any, Mapping, Optional

import numpy as np
import torch

from .._spec.layout import Layout
from .._typing import Tensor
from ._dispersion_spec import dispersion_spec


class CovariateTables(torch.nn.Module):  # type: ignore[misc]  # torch is Any to the checker
    """The tables of the receiving layers, by vaefast layer name ("encoder.0",
    "head", "decoder.1", "output"; stored with "_" for "."), and the codes' offsets."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        levels = [int(n) for n in config.get("categorical_covariates", ())]
        self.levels = levels
        self.code_levels = list(dispersion_spec(config).code_levels)  # + the labels' column
        layout = Layout(config["n_features"], config["hidden"], config["latent_dim"],
                        config["decoder_hidden"], config["n_conditions"], config["likelihood"],
                        config["variance"], (), levels,
                        bool(config.get("deeply_inject_covariates", True)),
                        bool(config.get("encode_covariates", False)))
        self.receiving = [layout.layers[li][0] for li in sorted(layout.tables)]
        self.tables = torch.nn.ParameterDict({
            name.replace(".", "_"): torch.nn.Parameter(
                torch.zeros(layout.cat_rows, layout.layers[li][2]))
            for name, li in zip(self.receiving, sorted(layout.tables))})
        # not in the state_dict: a model without covariates keeps its keys
        self.register_buffer("offsets", torch.tensor(np.cumsum([0] + levels[:-1]),
                                                     dtype=torch.long), persistent=False)

    def table(self, name: str) -> Optional[Tensor]:
        """Layer `name`'s table (Σ levels, out), or None if it receives none."""
        key = name.replace(".", "_")
        return self.tables[key] if key in self.tables else None

    def check(self, codes: Optional[Tensor], n: int) -> Optional[Tensor]:
        """The codes (n, K) as int64, checked like vaefast's: given exactly
        when the model has covariates, the right shape, every code in range."""
        levels = self.code_levels
        if not levels:
            if codes is not None:
                raise ValueError("codes was given but this model has no categorical "
                                 "covariates")
            return None
        if codes is None:
            raise ValueError(f"codes is required: this model's codes have levels {levels}")
        codes = torch.as_tensor(codes)
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise TypeError(f"codes must hold integer codes, got dtype {codes.dtype}")
        if tuple(codes.shape) != (n, len(levels)):
            raise ValueError(f"codes must have shape ({n}, {len(levels)}), got "
                             f"{tuple(codes.shape)}")
        bound = torch.tensor(levels, device=codes.device)
        if n and bool(((codes < 0) | (codes >= bound)).any()):
            raise ValueError(f"codes out of range: column k must lie in [0, levels[k]), "
                             f"levels {levels}")
        return codes.long()

    def add(self, name: str, pre: Tensor, codes: Optional[Tensor]) -> Tensor:
        """pre (N, out) plus layer `name`'s gathered rows (pre as is without a table)."""
        table = self.table(name)
        if table is None:
            return pre
        assert codes is not None  # check() required them
        rows = codes[:, :len(self.levels)] + self.offsets  # not the labels' column
        return pre + torch.nn.functional.embedding(rows, table).sum(dim=1)

    def run(self, side: str, sequential: Any, h: Tensor, codes: Optional[Tensor],
            last: Optional[str] = None) -> Tensor:
        """`sequential` (a side's Linear/norm/ReLU/Dropout chain) on h, the
        tables added after each Linear: "{side}.{i}" for the i-th, `last`
        (the output layer's name) for the last one if given."""
        linears = [m for m in sequential if isinstance(m, torch.nn.Linear)]
        i = 0
        for module in sequential:
            h = module(h)
            if isinstance(module, torch.nn.Linear):
                name = last if last is not None and i == len(linears) - 1 else f"{side}.{i}"
                h = self.add(name, h, codes)
                i += 1
        return h


def table_prefixes(name: str, heads: "tuple[str, ...] | list[str]") -> tuple[str, ...]:
    """The get_weights() prefixes of layer `name`'s table, its columns in
    equal parts: the head's are mu's then logvar's, the output layer's its heads'."""
    return {"head": ("mu", "logvar"), "output": tuple(heads)}.get(name, (name,))


def copy_in(module: Any, weights: Mapping[str, Any]) -> None:
    """The tables of get_weights() `weights` into module.covariates (under no_grad)."""
    for name in module.covariates.receiving:
        parts = [torch.from_numpy(np.ascontiguousarray(weights[f"{p}.covariates"]))
                 for p in table_prefixes(name, module.heads)]
        module.covariates.table(name).copy_(torch.cat(parts, dim=1))


def copy_out(module: Any, weights: dict[str, Any]) -> None:
    """module.covariates' tables into the get_weights() dict `weights`."""
    for name in module.covariates.receiving:
        table = module.covariates.table(name).detach().cpu().numpy()
        prefixes = table_prefixes(name, module.heads)
        width = table.shape[1] // len(prefixes)
        for i, p in enumerate(prefixes):
            weights[f"{p}.covariates"] = table[:, i * width:(i + 1) * width]
