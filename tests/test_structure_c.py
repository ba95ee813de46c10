"""The C core states each concept once (issue 21): checks that read csrc/ as text.

A likelihood is one entry of the table in csrc/vae_likelihood.c, so its enum
value may appear only in the public header, that table and its kernels; the
kernel sets are one list in csrc/vaefast.h that the C side and CMakeLists.txt
both read; no C source grows past 600 lines.
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
