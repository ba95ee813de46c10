"""vaefast: variational autoencoders on the CPU, with fused SIMD C kernels.

The kernel set (``generic``, ``avx2`` or ``avx512``) is chosen once, at
import: the best one this CPU supports, or the one named by the environment
variable ``VAEFAST_ISA``. An unknown or unsupported value is an ImportError,
never a silent fallback.
"""

import os as _os

from . import _core
from . import ops, random  # noqa: E402,F401  (public submodules)
from .model import VAE, History, NonFiniteError  # noqa: E402

__version__ = "0.1.0"


def _select_isa_at_import():
    forced = _os.environ.get("VAEFAST_ISA", "").strip().lower()
    if not forced:
        _core.set_isa(_core.best_isa())
        return
    try:
        _core.set_isa(forced)
    except ValueError as exc:
        raise ImportError(f"VAEFAST_ISA={forced!r}: {exc}") from None


_select_isa_at_import()


def isa():
    """Name of the active kernel set: ``"generic"``, ``"avx2"`` or ``"avx512"``."""
    return _core.get_isa()


def cpu_features():
    """CPU features detected at run time, as a dict of name -> bool.

    ``os_avx`` / ``os_avx512`` report whether the operating system saves the
    wider register state (XGETBV); without it the instructions are unusable.
    """
    return _core.cpu_features()


def supported_isas():
    """Kernel sets that are built in and usable on this CPU, lowest first."""
    return _core.supported_isas()


def set_num_threads(n):
    """Set the number of OpenMP threads used by vaefast's kernels.

    Results are bit-identical whatever the thread count.

    Parameters
    ----------
    n : int
        Number of threads, at least 1.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _core.set_num_threads(n)


def get_num_threads():
    """Number of OpenMP threads vaefast's kernels use (honours OMP_NUM_THREADS)."""
    return _core.get_num_threads()


__all__ = [
    "VAE",
    "History",
    "NonFiniteError",
    "isa",
    "cpu_features",
    "supported_isas",
    "set_num_threads",
    "get_num_threads",
]
