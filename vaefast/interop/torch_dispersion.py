"""The NB/ZINB θ of a to_torch module (vaefast/interop/torch_export.py) for
every ``dispersion=`` mode (vaefast/interop/_dispersion_spec.py): as in
vaefast's core (csrc/vae_dispersion.c) and scVI (scvi-tools 1.4,
scvi/module/_vae.py, VAE.generative: px_r from a one-hot product with the
batch or label, or from the decoder's px_r head), log θ of row i is

* "gene": the vector ``likelihood.log_theta`` (D,), the same for every row;
* "gene-batch" / "gene-label": row ``codes[i, column]`` of the table
  ``likelihood.log_theta_table`` (rows, D): an embedding lookup, whose
  gradient autograd adds back by code;
* "gene-cell": the output layer's last D columns (``output_log_theta``).

The likelihood hooks (vaefast/_spec/export_hooks.py) clamp it to
[log_theta_min, log_theta_max] per element. Imported only with torch.
"""

from typing import Any, Optional

import torch

from .._spec.limits import LIMITS
from .._typing import Tensor
from ._dispersion_spec import DispersionSpec


def add_parameters(module: Any, spec: DispersionSpec, n_features: int) -> None:
    """module.likelihood gains the (rows, D) table of a table mode (zeros;
    to_torch copies the model's in)."""
    if spec.table:
        module.likelihood["log_theta_table"] = torch.nn.Parameter(
            torch.zeros(spec.rows, n_features))


def split_output(module: Any, out: Tensor,
                 codes: Optional[Tensor]) -> tuple[Tensor, Optional[Tensor]]:
    """(the likelihood's part of the output layer `out`, its per-feature or
    per-row parameter: log θ (D,) or (N, D), the Gaussian's log-variance, or
    None); `codes` checked (N, columns) int64, or None."""
    spec: DispersionSpec = module.dispersion
    if spec.head:
        D = module.n_features
        return out[:, :-D], out[:, -D:]
    if spec.table:
        assert codes is not None  # covariates.check() requires them with a table
        return out, module.likelihood["log_theta_table"][codes[:, spec.column]]
    return out, next(iter(module.likelihood.values()), None)


def clamped(log_theta: Tensor) -> Tensor:
    """log θ clamped as vaefast's kernels use it."""
    return log_theta.clamp(LIMITS["log_theta_min"], LIMITS["log_theta_max"])
