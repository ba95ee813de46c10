"""The C core states each concept once (issue 21): checks that read csrc/ as text.

A likelihood is one entry of the table in csrc/vae_likelihood.c, so its enum
value may appear only in the public header, that table and its kernels; the
kernel sets are one list in csrc/vaefast.h that the C side and CMakeLists.txt
both read; no C source grows past 600 lines; what differs between operating
systems and compilers is in the platform layer (csrc/platform*) alone.
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
HEADER = CSRC / "vaefast.h"


def c_files():
    return sorted(p for p in CSRC.rglob("*") if p.suffix in (".c", ".h"))


def files_naming(word):
    pattern = re.compile(r"\b" + re.escape(word) + r"\b")
    return [p.relative_to(CSRC).as_posix() for p in c_files() if pattern.search(p.read_text())]


def likelihood_enum_values():
    body = re.search(r"enum\s*\{([^}]*VF_LIKELIHOOD_[^}]*)\}", HEADER.read_text()).group(1)
    return re.findall(r"\b(VF_LIKELIHOOD_[A-Z0-9_]+)\s*=", body)


def kernel_sets():
    """(NAME, name) of every VF_SET line of the list in csrc/vaefast.h."""
    return re.findall(r"^\s*VF_SET\(([A-Z0-9_]+), ([a-z0-9_]+),", HEADER.read_text(), re.M)


def test_kernel_sets_are_read_from_the_header():
    assert ("GENERIC", "generic") in kernel_sets() and ("AVX512", "avx512") in kernel_sets()


# Where the sets used to be listed again; they now expand VF_KERNEL_SETS (the
# generic set, the starting one, may be named).
LIST_READERS = ["CMakeLists.txt", "csrc/dispatch.c", "csrc/kernels.h",
                "csrc/isa/kernel_tables.c", "csrc/isa/kernel_protos.h", "csrc/csr.c"]


@pytest.mark.parametrize("path", LIST_READERS)
def test_kernel_sets_listed_once(path):
    text = (ROOT / path).read_text()
    named = [n for N, n in kernel_sets() if n != "generic"
             and re.search(rf"\b({n}|VF_ISA_{N})\b", text)]
    assert not named, f"{path} names the kernel sets {named}: expand VF_KERNEL_SETS instead"


def test_likelihood_enum_is_read_from_the_header():
    # the parse below must find the four likelihoods, or the next test checks nothing
    assert {"VF_LIKELIHOOD_BERNOULLI", "VF_LIKELIHOOD_POISSON"} <= set(likelihood_enum_values())


@pytest.mark.parametrize("value", likelihood_enum_values())
def test_likelihood_enum_in_at_most_three_c_files(value):
    where = files_naming(value)
    assert "vaefast.h" in where and "vae_likelihood.c" in where, where
    assert len(where) <= 3, f"{value} is named in {where}: the model should read its table entry"


@pytest.mark.parametrize("name", [p.relative_to(CSRC).as_posix() for p in c_files()])
def test_no_c_file_over_600_lines(name):
    n = len((CSRC / name).read_text().splitlines())
    assert n <= 600, f"{name} has {n} lines"


# ------------------------------------------------------------ platform layer
# The platform layer (csrc/platform.h) is the one place that names an OS or a
# compiler (issue 25): elsewhere, a kernel or driver calls vf_os_* only.
PLATFORM = {"platform.h", "platform_posix.c", "platform_win32.c", "platform_cpu.c"}
# OS and compiler macros, headers and calls that have a vf_os_* stand-in.
OS_WORDS = re.compile(
    r"\b(_WIN32|_WIN64|__APPLE__|__linux__|__unix__|__GLIBC__|__MINGW\w*|_MSC_VER|__GNUC__"
    r"|__clang__|pthread\w*|cpuid\.h|__get_cpuid\w*|__cpuid\w*|_?xgetbv|getauxval|sysctl\w*"
    r"|windows\.h|unistd\.h|sys/\w+\.h|posix_memalign|aligned_alloc|_aligned_malloc"
    r"|clock_gettime|nanosleep|sched_yield|sysconf|_Thread_local|__declspec)\b")
# What an #if outside the layer may test: the project's own macros, OpenMP,
# C++ and the include guard (the public header), the instruction set (a
# kernel-set matter).
ALLOWED_IF = re.compile(r"\b(VF_\w+|VAEFAST_H|VW|_OPENMP|__cplusplus|__x86_64__|__i386__|__aarch64__)\b")


def code_of(path):
    """The file's text without its comments (they may name any OS)."""
    text = path.read_text()
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)


def outside_platform():
    return [p for p in c_files() if p.relative_to(CSRC).as_posix() not in PLATFORM]


def test_platform_words_are_found_in_the_layer():
    # the patterns below must match what the layer does, or the checks check nothing
    found = {m.group(1) for name in PLATFORM for m in OS_WORDS.finditer(code_of(CSRC / name))}
    assert {"_WIN32", "pthread_mutex_lock", "cpuid.h", "posix_memalign", "getauxval",
            "_MSC_VER", "windows.h", "clock_gettime"} <= found, found
    assert ALLOWED_IF.fullmatch("__x86_64__") and ALLOWED_IF.fullmatch("VF_SIMD_AVX2")
    assert not any(ALLOWED_IF.fullmatch(n) for n in ("_WIN32", "__linux__", "_MSC_VER", "__GNUC__"))


@pytest.mark.parametrize("name", [p.relative_to(CSRC).as_posix() for p in outside_platform()])
def test_no_os_or_compiler_words_outside_the_platform_layer(name):
    words = sorted({m.group(1) for m in OS_WORDS.finditer(code_of(CSRC / name))})
    assert not words, f"csrc/{name} names {words}: use csrc/platform.h"


@pytest.mark.parametrize("name", [p.relative_to(CSRC).as_posix() for p in outside_platform()])
def test_conditionals_outside_the_platform_layer_test_no_os(name):
    bad = []
    for line in code_of(CSRC / name).splitlines():
        m = re.match(r"\s*#\s*(?:if|elif|ifdef|ifndef)\b(.*)", line)
        if not m:
            continue
        names = set(re.findall(r"[A-Za-z_]\w*", m.group(1))) - {"defined"}
        unknown = {n for n in names if not ALLOWED_IF.fullmatch(n)}
        if unknown:
            bad.append(line.strip())
    assert not bad, f"csrc/{name}: conditions on the OS or compiler belong in csrc/platform.h: {bad}"


@pytest.mark.parametrize("name", [p.relative_to(CSRC).as_posix() for p in outside_platform()
                                  if p.parent == CSRC])
def test_drivers_use_no_compiler_extensions(name):
    # the kernels in csrc/isa/ use GCC/Clang builtins (prefetch, target
    # attributes); the portable code around them does not
    words = sorted(set(re.findall(r"\b(__attribute__|__builtin_\w+|__asm__|asm)\b",
                                  code_of(CSRC / name))))
    assert not words, f"csrc/{name} uses {words}"
