import os

import numpy as np
import pytest

import vaefast

# Seeded, fast hypothesis runs; CI may raise the example count via profile.
try:
    from hypothesis import settings

    settings.register_profile("vaefast", max_examples=40, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "vaefast"))
except ImportError:  # hypothesis is in the test extra; tests needing it skip
    pass


def pytest_report_header(config):
    return (f"vaefast {vaefast.__file__}\n"
            f"vaefast kernel set: {vaefast.isa()} "
            f"(supported: {', '.join(vaefast.supported_isas())}), "
            f"threads: {vaefast.get_num_threads()}")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def run_python(tmp_path):
    """Run `python -c code` in a fresh interpreter, outside the source tree
    (so it imports the installed vaefast, never the source folder)."""
    import subprocess
    import sys

    def run(code, **env_overrides):
        env = dict(os.environ)
        env.pop("VAEFAST_ISA", None)
        for k, v in env_overrides.items():  # None removes the variable
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        return subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    return run


@pytest.fixture
def threads_setting():
    """Restore the process-wide thread setting after the test."""
    old = vaefast.get_num_threads()
    yield
    vaefast.set_num_threads(old)


@pytest.fixture(params=vaefast.supported_isas())
def kernel_set(request):
    """Run the test once per kernel set this CPU supports (the active set is
    restored afterwards)."""
    before = vaefast._core.get_isa()
    vaefast._core.set_isa(request.param)
    yield request.param
    vaefast._core.set_isa(before)


@pytest.fixture
def on_each_kernel_set():
    """``run(fn)`` calls fn() once under each supported kernel set and returns
    {set name: result}; the active set is restored afterwards."""
    def run(fn):
        before = vaefast._core.get_isa()
        try:
            out = {}
            for isa in vaefast.supported_isas():
                vaefast._core.set_isa(isa)
                out[isa] = fn()
            return out
        finally:
            vaefast._core.set_isa(before)

    return run


def _central_differences(f, a, h=1e-6):
    """Gradient of the scalar f at the float64 array a by central differences
    (truncation error O(h^2 |f'''|), cancellation about 1e-16 / h)."""
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        ap, am = a.copy(), a.copy()
        ap[idx] += h
        am[idx] -= h
        g[idx] = (f(ap) - f(am)) / (2 * h)
    return g


@pytest.fixture
def central_differences():
    """The finite-difference oracle of the twins' gradients (a function)."""
    return _central_differences


def _assert_named_gradients(grads, loss_of, w):
    """Each float32 gradient grads[key] against central differences of the
    float64 loss_of(weights) in w[key] alone. The tolerance is float32's:
    the model's gradients are sums of B·width float32 products, each within
    a few ulp (1e-7 relative) of its float64 value, so 1e-4 of the largest
    entry covers them with room; smaller entries are held to 1e-4 relative."""
    assert set(grads) == set(w)
    for key in w:
        want = _central_differences(lambda a: loss_of({**w, key: a}), w[key])
        np.testing.assert_allclose(grads[key], want, rtol=1e-4,
                                   atol=1e-4 * np.abs(want).max() + 1e-7, err_msg=key)


@pytest.fixture
def assert_named_gradients():
    """Checks a model's named gradients against central differences of a
    float64 twin's loss (a function: grads, loss_of(named weights), w)."""
    return _assert_named_gradients


@pytest.fixture(scope="session")
def torch_loss_hidden():
    """tests/torch_reference.py's torch_loss_hidden (tests/ is no package:
    the module is loaded by path)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("torch_reference.py")
    spec = importlib.util.spec_from_file_location("vaefast_torch_reference_hidden", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.torch_loss_hidden


def _close_to(got, want, rel=1e-5):
    """got (an array or a tuple of them) equal to want's dtype and shape and
    within rel of want's largest entry (+1e-6): the bound of a sparse path
    against the dense one (float32 sums in another order)."""
    if isinstance(want, tuple):
        for g, w in zip(got, want):
            _close_to(g, w, rel)
        return
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=rel * np.abs(want).max() + 1e-6)


@pytest.fixture
def close_to():
    """Checks a sparse path's result against the dense path's (a function:
    got, want[, rel])."""
    return _close_to


@pytest.fixture
def csr_calls(monkeypatch):
    """Records every Rows.take_csr call (the CSR batches the core gets): the
    list of the rows asked for."""
    from vaefast import _rows

    calls = []
    take_csr = _rows.Rows.take_csr

    def spy(self, rows):
        calls.append(rows)
        return take_csr(self, rows)

    monkeypatch.setattr(_rows.Rows, "take_csr", spy)
    return calls


@pytest.fixture
def no_dense_chunks(monkeypatch):
    """Rows.take (a dense chunk for the encoder) fails if called."""
    from vaefast import _rows

    def refuse(self, rows):
        raise AssertionError("a dense chunk was gathered")

    monkeypatch.setattr(_rows.Rows, "take", refuse)
