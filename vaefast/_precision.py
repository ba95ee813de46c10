"""The arithmetic of a model's layers (issue 26; docs/precision.md).

``"fp32"``: every product in float32. ``"bf16"``: every dense layer's GEMM
(forward, and in training both backward products) reads its operands
rounded to bfloat16 and accumulates in float32, on the process's bf16 route
(AMX, VDPBF16PS or their bit-exact emulations); biases, ReLU, the logvar
clamp, the reparameterization, exp/log, losses, KL, reductions and the
optimizer stay float32. The names here are the values of ``precision=``;
the codes are vf_vae_rows.precision (csrc/vaefast.h).
"""

from typing import Optional

CODES = {"fp32": 0, "bf16": 1}
DEFAULT = "fp32"


def check(value: object, name: str = "precision") -> str:
    """value if it is a precision's name, else ValueError naming `name`."""
    if not isinstance(value, str) or value not in CODES:
        raise ValueError(f"{name} must be one of {tuple(CODES)}, got {value!r}")
    return value


def code(model_precision: str, value: Optional[object]) -> int:
    """The core's code for a call's precision= (None: the model's)."""
    return CODES[model_precision if value is None else check(value)]
