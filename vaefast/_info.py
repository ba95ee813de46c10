"""What a bug report needs: ``vaefast info`` without a model.

The version, the Python and platform, the kernel sets (chosen, supported,
built in), the CPU features detected, the thread setting and the OpenMP
runtimes in the process, the environment variables that change vaefast's
behaviour, and which optional packages are installed. Packages are looked up
in the installed metadata only, never imported: importing one (PyTorch with
its own OpenMP runtime, say) would change the process being described.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from dataclasses import dataclass
from importlib import metadata

from . import _core
from ._version import __version__

# Not an extra of vaefast, but PyTorch's own OpenMP runtime often shares the
# process with vaefast's (docs/threads.md): worth knowing in a bug report.
PEERS = ("torch",)
# Environment variables read by vaefast or by the OpenMP runtime it uses.
ENVIRONMENT = ("VAEFAST_ISA", "VAEFAST_BF16", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
               "OMP_PROC_BIND", "OMP_PLACES", "OMP_DYNAMIC")
# File names of the GNU, LLVM and Intel OpenMP runtimes (auditwheel's
# grafted copies add a hash: libgomp-a34b3233.so.1).
_OPENMP_FILE = re.compile(r"^(lib)?(gomp|omp|iomp5|iomp5md|vcomp\d*)[-.]")
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def package_version(name: str) -> str | None:
    """Installed version of distribution `name`, or None; never imports it."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def optional_packages(requirements: list[str] | None = None
                      ) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """(distribution, installed version or None, groups) for every package
    vaefast's metadata names, in the order first named; the groups are
    ``"required"`` for a dependency, the extras that list it, and ``"peer"``
    for :data:`PEERS`.

    Parameters
    ----------
    requirements : list of str, optional
        Requirement strings as ``importlib.metadata.requires`` gives them
        (default: vaefast's own).
    """
    if requirements is None:
        requirements = metadata.requires("vaefast") or []
    groups: dict[str, list[str]] = {}
    for req in requirements:
        name = _NAME.match(req)
        if name is None:
            raise ValueError(f"requirements: cannot read a package name in {req!r}")
        extra = _EXTRA.search(req)
        named = groups.setdefault(name.group(1), [])
        group = extra.group(1) if extra else "required"
        if group not in named:
            named.append(group)
    for peer in PEERS:
        groups.setdefault(peer, []).append("peer")
    return [(name, package_version(name), tuple(g)) for name, g in groups.items()]


def openmp_runtimes() -> list[str] | None:
    """Paths of the OpenMP runtime libraries loaded in this process, or None
    where that cannot be read (it comes from /proc/self/maps: Linux)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = {line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6}
    except OSError:
        return None
    return sorted(p for p in paths if _OPENMP_FILE.match(os.path.basename(p)))


@dataclass(frozen=True)
class Info:
    """Everything :func:`report` prints (see the module docstring)."""

    version: str
    location: str
    python: str
    gil: bool | None  # None before Python 3.13 (always enabled there)
    platform: str
    isa: str
    isa_forced: str | None  # the VAEFAST_ISA value, if set
    supported_isas: tuple[str, ...]
    compiled_isas: tuple[str, ...]
    cpu_features: dict[str, bool]
    bf16_route: str  # what precision="bf16" runs: "amx", "native" or "emulated"
    threads: int
    openmp: int  # the build's _OPENMP (yyyymm); 0: built without, single-threaded
    cpus: int | None
    cpus_usable: int | None  # None where the affinity mask cannot be read
    openmp_runtimes: list[str] | None
    environment: dict[str, str]
    packages: list[tuple[str, str | None, tuple[str, ...]]]


def collect() -> Info:
    """The facts about this process and installation."""
    affinity = getattr(os, "sched_getaffinity", None)
    gil = getattr(sys, "_is_gil_enabled", None)
    return Info(
        version=__version__,
        location=os.path.dirname(os.path.abspath(_core.__file__)),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        gil=None if gil is None else bool(gil()),
        platform=f"{platform.platform()} ({platform.machine()})",
        isa=_core.get_isa(),
        isa_forced=os.environ.get("VAEFAST_ISA", "").strip().lower() or None,
        supported_isas=tuple(_core.supported_isas()),
        compiled_isas=tuple(_core.compiled_isas()),
        cpu_features=dict(_core.cpu_features()),
        bf16_route=_core.bf16_auto_impl(),
        threads=_core.get_num_threads(),
        openmp=_core.openmp_version(),
        cpus=os.cpu_count(),
        cpus_usable=len(affinity(0)) if affinity is not None else None,
        openmp_runtimes=openmp_runtimes(),
        environment={k: os.environ[k] for k in ENVIRONMENT if k in os.environ},
        packages=optional_packages(),
    )


def report(info: Info | None = None) -> list[str]:
    """The lines ``vaefast info`` prints for `info` (default: :func:`collect`)."""
    i = collect() if info is None else info
    gil = "" if i.gil is None else f" (GIL {'enabled' if i.gil else 'disabled'})"
    chosen = f"forced by VAEFAST_ISA={i.isa_forced}" if i.isa_forced else "the best supported"
    usable = "" if i.cpus_usable is None else f", {i.cpus_usable} usable by this process"
    runtimes = ("unknown on this platform" if i.openmp_runtimes is None
                else ", ".join(i.openmp_runtimes) or "none")
    environment = (", ".join(f"{k}={v}" for k, v in i.environment.items())
                   or "none of " + ", ".join(ENVIRONMENT))
    lines = [
        f"vaefast: {i.version}",
        f"installed in: {i.location}",
        f"python: {i.python}{gil}",
        f"platform: {i.platform}",
        f"kernel set: {i.isa} ({chosen})",
        f"kernel sets supported: {' '.join(i.supported_isas)}",
        f"kernel sets built in: {' '.join(i.compiled_isas)}",
        f"CPU features: {' '.join(k for k, v in i.cpu_features.items() if v) or 'none'}",
        f"CPU features absent: {' '.join(k for k, v in i.cpu_features.items() if not v) or 'none'}",
        f"bf16 route: {i.bf16_route}",
        f"threads: {i.threads} (CPUs: {i.cpus}{usable})",
        f"OpenMP: {f'version {i.openmp}' if i.openmp else 'none in this build (single-threaded)'}",
        f"OpenMP runtimes loaded: {runtimes}",
        f"environment: {environment}",
        "packages (name version [required, or the extras that name it]):",
    ]
    lines += [f"  {name} {version or 'not installed'} [{', '.join(groups)}]"
              for name, version, groups in i.packages]
    return lines
