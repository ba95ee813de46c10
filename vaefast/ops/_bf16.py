"""The ``precision`` argument of ``linear`` and ``matmul`` (vaefast/ops/_linear.py).

Each operand entry is rounded to bfloat16 (round to nearest even, NaN kept
NaN) as the GEMM packs it, and the products are summed in float32 two at a
time in the order of the AVX512_BF16 instruction VDPBF16PS, which runs where
the CPU has it (avx512 kernel set active); elsewhere an exact emulation of
it gives the same bits. Bias and ReLU are applied in float32. What this
changes numerically: docs/precision.md.

Inputs and errors are as for float32 (vaefast/ops/_linear.py): NaN or
infinity in an input raises ValueError naming it; a finite input whose
product overflows (bf16 rounds values above about 3.39e38 to infinity)
raises Float32OverflowError.
"""

PRECISIONS = ("fp32", "bf16")


def is_bf16(precision: object) -> bool:
    """True for "bf16", False for "fp32"; ValueError naming `precision` otherwise."""
    if type(precision) is str and precision in PRECISIONS:
        return precision == "bf16"
    raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, "
                     f"got {precision!r}")
