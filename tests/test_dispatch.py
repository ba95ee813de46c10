"""Kernel-set dispatch: detection, forcing a level, failing loudly."""

import os
import platform
import re

import pytest

import vaefast

ALL_ISAS = ("generic", "avx2", "avx512", "neon")
# A build without OpenMP runs single-threaded: the setting stays 1.
needs_threads = pytest.mark.skipif(vaefast._core.openmp_version() == 0,
                                   reason="built without OpenMP: single-threaded")


def test_active_isa_is_supported():
    assert vaefast.isa() in vaefast.supported_isas()
    assert "generic" in vaefast.supported_isas()


def test_default_is_best_supported(run_python):
    result = run_python("import vaefast; print(vaefast.isa())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == vaefast.supported_isas()[-1]


def test_avx512_machine_reports_avx512(run_python):
    f = vaefast.cpu_features()
    need = ("avx512f", "avx512vl", "avx512bw", "avx512dq", "os_avx512", "fma", "avx2")
    if not all(f[k] for k in need):
        pytest.skip("this CPU (or OS) lacks AVX-512")
    result = run_python("import vaefast; print(vaefast.isa())")
    assert result.stdout.strip() == "avx512"


@pytest.mark.skipif(platform.machine().lower() not in ("aarch64", "arm64"),
                    reason="not an AArch64 machine")
def test_aarch64_machine_runs_neon(run_python):
    # Advanced SIMD is part of every AArch64 CPU (the kernel's HWCAP_ASIMD)
    assert vaefast.cpu_features()["neon"]
    assert vaefast._core.compiled_isas() == ("generic", "neon")
    result = run_python("import vaefast; print(vaefast.isa())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "neon"


def test_cpu_features_consistent():
    f = vaefast.cpu_features()
    assert set(f) >= {"avx2", "fma", "avx512f", "os_avx", "os_avx512"}
    assert all(isinstance(v, bool) for v in f.values())
    if "avx512" in vaefast.supported_isas():
        assert f["avx512f"] and f["os_avx512"]
    if "avx2" in vaefast.supported_isas():
        assert f["avx2"] and f["fma"] and f["os_avx"]
    if "neon" in vaefast.supported_isas():
        assert f["neon"]


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64")
                    or not os.path.exists("/proc/cpuinfo"),
                    reason="the vendor rule is x86's; read from Linux's /proc/cpuinfo")
def test_fast_subnormals_follows_the_vendor():
    # platform_cpu.c: AMD family 19h (25) and later; Adam's route is its negation
    info = open("/proc/cpuinfo").read()
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", info, re.M).group(1)
    family = int(re.search(r"^cpu family\s*:\s*(\d+)", info, re.M).group(1))
    expected = vendor == "AuthenticAMD" and family >= 0x19
    assert vaefast.cpu_features()["fast_subnormals"] is expected
    assert vaefast._core.set_adam_subnormal_route(None) is (not expected)


@pytest.mark.skipif(platform.machine().lower() in ("x86_64", "amd64"), reason="x86")
def test_fast_subnormals_is_not_claimed_off_x86():
    assert vaefast.cpu_features()["fast_subnormals"] is False
    assert vaefast._core.set_adam_subnormal_route(None) is True


@pytest.mark.parametrize("name", ALL_ISAS)
def test_force_each_level(name, run_python):
    result = run_python("import vaefast; print(vaefast.isa())", VAEFAST_ISA=name)
    if name in vaefast.supported_isas():
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == name
    else:
        assert result.returncode != 0
        assert "ImportError" in result.stderr and "VAEFAST_ISA" in result.stderr


@pytest.mark.parametrize("bogus", ["sse9", "AVX-1024", "generic2", "avx"])
def test_bogus_value_fails_loudly(bogus, run_python):
    result = run_python("import vaefast", VAEFAST_ISA=bogus)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "VAEFAST_ISA" in result.stderr and "unknown kernel set" in result.stderr


@needs_threads
def test_threads_roundtrip():
    before = vaefast.get_num_threads()
    try:
        vaefast.set_num_threads(1)
        assert vaefast.get_num_threads() == 1
        vaefast.set_num_threads(2)
        assert vaefast.get_num_threads() == 2
    finally:
        vaefast.set_num_threads(before)


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-3, ValueError),
                                      (1.5, TypeError), ("2", TypeError), (True, TypeError)])
def test_set_num_threads_rejects(bad, exc):
    with pytest.raises(exc, match="n must"):
        vaefast.set_num_threads(bad)


def test_omp_num_threads_honoured(run_python):
    result = run_python("import vaefast; print(vaefast.get_num_threads())", OMP_NUM_THREADS=1)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_import_leaves_openmp_settings_alone(run_python):
    # every parallel loop runs on vaefast's own team (csrc/team.c), so the
    # import sets nothing that other libraries' OpenMP runtimes would read
    show = "import os, vaefast; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    default = run_python(show, GOMP_SPINCOUNT=None, OMP_WAIT_POLICY=None)
    assert default.returncode == 0, default.stderr
    assert default.stdout.strip() == "None None"
    assert run_python(show, GOMP_SPINCOUNT="123").stdout.strip() == "123 None"
