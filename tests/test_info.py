"""The version (one value, from the package metadata) and `vaefast info`."""

import importlib.metadata
import os
import re
import sys

import numpy as np
import pytest

import vaefast
from vaefast import VAE, _info, cli
from vaefast.io import serialize as _serialize

# PEP 440, as setuptools-scm writes it: a tag (1.2.0), or between tags
# 1.2.1.devN+g<hash>[.dYYYYMMDD] (the date when the tree was modified).
PEP440 = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?(\+[a-z0-9]+(\.[a-z0-9]+)*)?$")
OPTIONAL_MODULES = ("torch", "scipy", "sklearn", "dask", "distributed", "mpi4py", "onnx",
                    "onnxruntime", "safetensors", "threadpoolctl", "matplotlib", "randomgen",
                    "anndata", "h5py", "pandas")


def test_version_is_the_installed_metadata():
    assert vaefast.__version__ == importlib.metadata.version("vaefast")
    assert PEP440.match(vaefast.__version__), vaefast.__version__


def test_cli_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"vaefast {vaefast.__version__}\n"


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_saved_model_names_its_writer(tmp_path, capsys, fmt):
    path = tmp_path / "m.vae"
    VAE(6, hidden=(4,), latent_dim=2, seed=0).save(path, format=fmt)
    assert _serialize.saved_by(path) == f"vaefast {vaefast.__version__}"
    assert cli.main(["info", str(path)]) == 0
    assert f"written by: vaefast {vaefast.__version__}\n" in capsys.readouterr().out


def test_writer_is_outside_the_checksum(tmp_path):
    # So a reader that predates the entry verifies the file; changing it
    # leaves the model loadable and unchanged.
    model = VAE(6, hidden=(4,), latent_dim=2, seed=0)
    model.save(tmp_path / "m.vae")
    with np.load(tmp_path / "m.vae") as z:
        payload = {k: z[k] for k in z.files}
    payload["writer"] = np.array("vaefast 0.0.1")
    with open(tmp_path / "edited.vae", "wb") as f:  # a name: savez would add .npz
        np.savez(f, **payload)
    assert _serialize.saved_by(tmp_path / "edited.vae") == "vaefast 0.0.1"
    again = VAE.load(tmp_path / "edited.vae")
    np.testing.assert_array_equal(again.get_weights()["mu.weight"],
                                  model.get_weights()["mu.weight"])


def test_file_without_writer(capsys):
    old = os.path.join(os.path.dirname(__file__), "data", "model_v1_bernoulli.vae")
    assert _serialize.saved_by(old) is None
    assert cli.main(["info", old]) == 0
    assert "written by: a vaefast before it was recorded\n" in capsys.readouterr().out


def _fields(text):
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line
                and not line.startswith(" "))


def test_info_without_a_model(run_python):
    isa = vaefast.supported_isas()[0]  # forced: the line must say so
    code = ("import sys, vaefast.cli as c; rc = c.main(['info']); "
            f"print('imported:', [m for m in {OPTIONAL_MODULES!r} if m in sys.modules]); "
            "sys.exit(rc)")
    proc = run_python(code, VAEFAST_ISA=isa, OMP_NUM_THREADS=1)
    assert proc.returncode == 0, proc.stderr
    f = _fields(proc.stdout)
    assert f["imported"] == "[]"  # packages are looked up, never imported
    assert f["vaefast"] == vaefast.__version__
    assert f["kernel set"] == f"{isa} (forced by VAEFAST_ISA={isa})"
    assert f["kernel sets supported"].split() == list(vaefast.supported_isas())
    assert f["threads"].startswith("1 (CPUs: ")
    assert "OMP_NUM_THREADS=1" in f["environment"]
    assert f"  numpy {np.__version__} [required]" in proc.stdout.splitlines()
    # Without VAEFAST_ISA the best set runs.
    f = _fields(run_python("import vaefast.cli as c; c.main(['info'])").stdout)
    assert f["kernel set"] == f"{vaefast.supported_isas()[-1]} (the best supported)"


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo") or os.uname().machine != "x86_64",
                    reason="compares against the x86-64 Linux kernel's /proc/cpuinfo")
def test_cpu_features_agree_with_the_kernel():
    with open("/proc/cpuinfo") as f:
        flags = set(next(line for line in f if line.startswith("flags")).split(":")[1].split())
    lines = _info.report()
    present = next(x for x in lines if x.startswith("CPU features: ")).split()[2:]
    absent = next(x for x in lines if x.startswith("CPU features absent: ")).split()[3:]
    # The kernel lists a flag only if the OS also enabled its register state.
    for name in ("sse2", "avx", "avx2", "fma", "avx512f", "avx512vl", "avx512bw", "avx512dq"):
        assert (name in present) == (name in flags) and (name in absent) != (name in flags), name


def test_packages_come_from_the_requirements():
    rows = _info.optional_packages([
        "numpy>=1.23",
        'no-such-package-vaefast>=1; extra == "foo"',
        'numpy; extra == "bar"',
        "scikit-learn>=1.6 ; extra == 'sklearn'",
    ])
    assert rows[0] == ("numpy", importlib.metadata.version("numpy"), ("required", "bar"))
    assert rows[1] == ("no-such-package-vaefast", None, ("foo",))
    sklearn = rows[2]
    assert sklearn[0] == "scikit-learn" and sklearn[2] == ("sklearn",)
    assert rows[-1][0] == "torch" and rows[-1][2] == ("peer",)
    with pytest.raises(ValueError, match="requirements"):
        _info.optional_packages(["; extra == 'x'"])
    # vaefast's own metadata: its one dependency and every extra.
    own = {name: groups for name, _, groups in _info.optional_packages()}
    assert own["numpy"] == ("required",)
    assert set(importlib.metadata.metadata("vaefast").get_all("Provides-Extra")) == {
        g for groups in own.values() for g in groups} - {"required", "peer"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_openmp_runtime_of_the_core():
    runtimes = _info.openmp_runtimes()
    assert all(os.path.isfile(p) for p in runtimes)
    with open(vaefast._core.__file__, "rb") as f:
        needs_gomp = b"libgomp" in f.read()  # DT_NEEDED names the runtime it links
    if needs_gomp:
        assert any("libgomp" in os.path.basename(p) for p in runtimes), runtimes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the ELF's DT_NEEDED names")
def test_openmp_of_the_build_is_reported(threads_setting):
    """The OpenMP line says what the binary links (a build without OpenMP, as
    -DVAEFAST_OPENMP=OFF makes, links no runtime), and such a build keeps the
    thread setting at 1 whatever is asked."""
    with open(vaefast._core.__file__, "rb") as f:
        links_openmp = re.search(rb"lib(gomp|omp|iomp5)\.so", f.read()) is not None
    version = vaefast._core.openmp_version()
    assert (version != 0) == links_openmp
    line = next(x for x in _info.report() if x.startswith("OpenMP: "))
    if version:
        assert 200505 <= version <= 209912 and line == f"OpenMP: version {version}"
    else:
        assert line == "OpenMP: none in this build (single-threaded)"
    vaefast.set_num_threads(3)
    assert vaefast.get_num_threads() == (3 if version else 1)
