"""vaefast: variational autoencoders on the CPU, with fused SIMD C kernels.

The kernel set (``generic``, ``avx2`` or ``avx512`` on x86-64; ``generic``
or ``neon`` on AArch64) is chosen once, at
import: the best one this CPU supports, or the one named by the environment
variable ``VAEFAST_ISA``. An unknown or unsupported value is an ImportError,
never a silent fallback.
"""

import os as _os


def _find_core() -> None:
    """Import the compiled core.

    Running from a source checkout (e.g. ``python -m vaefast demo`` in the
    repository root after ``pip install .``) imports this folder, which has no
    compiled module; the installed copy of the package has it, so its folder
    is added to this package's search path.
    """
    try:
        from . import _core  # noqa: F401
        return
    except ImportError:
        import importlib.machinery
        import sys

        here = _os.path.dirname(_os.path.abspath(__file__))
        suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
        for entry in sys.path:
            folder = _os.path.abspath(_os.path.join(entry or _os.curdir, "vaefast"))
            if folder == here or not _os.path.isdir(folder):
                continue
            if any(f.startswith("_core.") and f.endswith(suffixes) for f in _os.listdir(folder)):
                __path__.append(folder)
                from . import _core  # noqa: F401, F811
                return
        raise ImportError(
            "vaefast's compiled core (vaefast._core) is not built; install the package "
            "with `pip install .` (or `pip install -e . --no-build-isolation`)") from None


_find_core()
from . import _core  # noqa: E402  (found above)
from . import datasets, ops, random  # noqa: E402,F401  (public submodules)
from ._core import SizeOverflowError  # noqa: E402
from ._validation import Float32OverflowError  # noqa: E402
from .model import VAE, NonFiniteError  # noqa: E402
from .training.history import History  # noqa: E402
from . import dask as _dask  # noqa: E402,F401  (registers the Dask engine; imports no dask)
from . import _gathered  # noqa: E402,F401  (sparse / AnnData input; imports neither)

from ._version import __version__  # noqa: E402  (the git tag; see _version)


def _select_isa_at_import() -> None:
    forced = _os.environ.get("VAEFAST_ISA", "").strip().lower()
    if not forced:
        _core.set_isa(_core.best_isa())
        return
    try:
        _core.set_isa(forced)
    except ValueError as exc:
        raise ImportError(f"VAEFAST_ISA={forced!r}: {exc}") from None


_select_isa_at_import()


def _select_bf16_route_at_import() -> None:
    """VAEFAST_BF16=amx|native|emulated fixes the route of precision="bf16"
    (docs/precision.md); unset or "auto": chosen from the active kernel set."""
    forced = _os.environ.get("VAEFAST_BF16", "").strip().lower()
    try:
        _core.set_bf16_route(forced or "auto")
    except ValueError as exc:
        raise ImportError(f"VAEFAST_BF16={forced!r}: {exc}") from None


_select_bf16_route_at_import()

from . import _threadpool  # noqa: E402

_threadpool.install(__version__)


def isa() -> str:
    """Name of the active kernel set: ``"generic"``, ``"avx2"``, ``"avx512"``
    or ``"neon"``."""
    return _core.get_isa()


def cpu_features() -> dict[str, bool]:
    """CPU features detected at run time, as a dict of name -> bool.

    ``os_avx`` / ``os_avx512`` report whether the operating system saves the
    wider register state (XGETBV); without it the instructions are unusable.
    ``fast_subnormals`` says that vector arithmetic on subnormal floats runs
    without microcode assists (AMD Zen 3 and later); Adam then skips its
    route around them, which costs time where no assist is taken.
    """
    return _core.cpu_features()


def supported_isas() -> tuple[str, ...]:
    """Kernel sets that are built in and usable on this CPU, lowest first."""
    return _core.supported_isas()


def set_num_threads(n: int) -> None:
    """Set the number of threads vaefast's kernels use, for every thread of
    the process.

    Results are bit-identical whatever the thread count. ``fit`` may run a
    step on one thread when that is measured to be faster (a busy machine),
    and a forked child runs serially on the thread that forked if that thread
    had used several; see docs/threads.md. ``threadpoolctl.threadpool_limits``
    changes this setting too.

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


def get_num_threads() -> int:
    """The thread setting of :func:`set_num_threads` (default: ``OMP_NUM_THREADS``
    if set, else the number of CPUs); always 1 in a build without OpenMP, which
    runs single-threaded (``python -m vaefast info`` says which)."""
    return _core.get_num_threads()


__all__ = [
    "VAE",
    "History",
    "NonFiniteError",
    "SizeOverflowError",
    "Float32OverflowError",
    "isa",
    "cpu_features",
    "supported_isas",
    "set_num_threads",
    "get_num_threads",
]
