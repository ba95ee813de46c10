"""vaefast's thread pool as seen by threadpoolctl.

vaefast's thread count is its own process-wide setting (csrc/threads.c), not
libgomp's per-thread one, so threadpoolctl's generic OpenMP controller cannot
limit it. This module registers a controller for vaefast's compiled core:
``threadpoolctl.threadpool_info()`` lists it (user_api "openmp",
internal_api "vaefast") and ``threadpool_limits(n)`` (or with
``user_api="openmp"``) limits it, as joblib and scikit-learn expect.

threadpoolctl is optional and never imported by vaefast: the controller is
registered at once if threadpoolctl is already imported, else right after
it is (a finder on ``sys.meta_path`` that waits for that one name).
"""

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any, Optional, Sequence

_MODULE = "threadpoolctl"
# vaefast's version, given by install() (no import of the package)
_VERSION: list[Optional[str]] = [None]


def _controller_class(threadpoolctl: Any) -> type:
    # threadpoolctl is optional and untyped: its base class is Any here
    class VaefastController(threadpoolctl.LibController):  # type: ignore[misc]
        """Controls vf_set_num_threads of vaefast's compiled core."""

        user_api = "openmp"
        internal_api = "vaefast"
        filename_prefixes = ("_core.",)
        # a library named _core.* without these symbols is someone else's
        check_symbols = ("vf_set_num_threads", "vf_get_num_threads")

        def get_num_threads(self) -> int:
            return int(self.dynlib.vf_get_num_threads())

        def set_num_threads(self, num_threads: int) -> None:
            self.dynlib.vf_set_num_threads(int(num_threads))

        def get_version(self) -> Optional[str]:
            return _VERSION[0]

    return VaefastController


def _register(threadpoolctl: Any) -> None:
    if not hasattr(threadpoolctl, "register") or getattr(threadpoolctl, "_vaefast_registered",
                                                         False):
        return  # threadpoolctl < 3.5 has no register(): nothing to do
    threadpoolctl.register(_controller_class(threadpoolctl))
    threadpoolctl._vaefast_registered = True


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself; when threadpoolctl is imported, wraps its loader
    so that the controller is registered once the module has run."""

    def find_spec(self, name: str, path: Optional[Sequence[str]] = None,
                  target: Optional[ModuleType] = None
                  ) -> Optional[importlib.machinery.ModuleSpec]:
        if name != _MODULE:
            return None
        sys.meta_path.remove(self)  # the real finders take over from here
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            exec_module(module)
            _register(module)

        spec.loader.exec_module = exec_then_register  # type: ignore[method-assign]  # wrapped once
        return spec


def install(version: str) -> None:
    """Register now if threadpoolctl is imported, else when it is; the
    controller reports `version` as vaefast's."""
    _VERSION[0] = version
    if _MODULE in sys.modules:
        _register(sys.modules[_MODULE])
    elif not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
