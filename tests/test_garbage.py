"""Random garbage thrown at every public function: a clean exception or a
valid result, never a crash.

The functions are found by introspection (vaefast.ops, vaefast.random and
the VAE's methods), so a new public function is covered without editing
this file. "Clean" means one of the exceptions a caller can catch for bad
input; anything else (SystemError, a segfault, KeyError from inside the
library) fails the test.
"""

import inspect

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import vaefast  # noqa: E402
from vaefast import ops  # noqa: E402
from vaefast import random as vrandom  # noqa: E402

CLEAN = (TypeError, ValueError, MemoryError, OverflowError, FloatingPointError, RuntimeError)

DTYPES = [np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_, np.uint32,
          np.complex64, np.float16, object, "U3"]


@st.composite
def garbage_array(draw):
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim)))
    dtype = draw(st.sampled_from(DTYPES))
    size = int(np.prod(shape)) if shape else 1
    if dtype == "U3":
        return np.full(shape, "ab", dtype="U3")
    if dtype is object:
        return np.full(shape, None, dtype=object)
    values = draw(st.lists(st.sampled_from([0.0, 1.0, -1.0, 0.5, 1e30, -1e4, np.nan, np.inf, 3.0]),
                           min_size=size, max_size=size))
    with np.errstate(all="ignore"):
        arr = np.array(values, dtype=np.float64).reshape(shape)
        if np.dtype(dtype).kind in "iub":
            arr = np.nan_to_num(arr, nan=0, posinf=7, neginf=-7).clip(-7, 7)
        arr = arr.astype(dtype)
    if draw(st.booleans()) and arr.ndim == 2 and arr.shape[1] > 1:
        arr = arr[:, ::2]  # non-contiguous
    return arr


garbage = st.one_of(
    garbage_array(),
    st.none(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.booleans(),
    st.lists(st.integers(-3, 3), max_size=4),
    st.just((2**40, 2**40)),
)


def public_functions(module):
    names = getattr(module, "__all__", [])
    return [(f"{module.__name__}.{n}", getattr(module, n)) for n in names
            if callable(getattr(module, n))]


def check_result(result):
    """A result that comes back is made of float32/float64 arrays, not objects."""
    arrays = result if isinstance(result, tuple) else (result,)
    for a in arrays:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            assert a.dtype in (np.float32, np.float64)


def call_with_garbage(fn, data):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    kwargs = {}
    for name, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is not p.empty and data.draw(st.booleans()):
            continue  # leave some defaults alone so deeper code is reached
        kwargs[name] = data.draw(garbage, label=name)
    try:
        result = fn(**kwargs)
    except CLEAN:
        return
    check_result(result)


FUNCTIONS = public_functions(ops) + public_functions(vrandom)


@pytest.mark.skipif(not FUNCTIONS, reason="no public kernels exported yet")
@pytest.mark.parametrize("name, fn", FUNCTIONS, ids=[n for n, _ in FUNCTIONS] or None)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_kernel_functions_survive_garbage(name, fn, data):
    call_with_garbage(fn, data)


def vae_methods():
    if not hasattr(vaefast, "VAE"):
        return []
    skip = {"fit", "save", "load", "set_weights"}  # covered by dedicated tests
    return [n for n, m in inspect.getmembers(vaefast.VAE, callable)
            if not n.startswith("_") and n not in skip]


@pytest.mark.skipif(not hasattr(vaefast, "VAE"), reason="vaefast.VAE not available")
@pytest.mark.parametrize("method", vae_methods())
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_vae_methods_survive_garbage(method, data):
    model = vaefast.VAE(6, hidden=(5,), latent_dim=2, seed=0)
    call_with_garbage(getattr(model, method), data)


@pytest.mark.skipif(not hasattr(vaefast, "VAE"), reason="vaefast.VAE not available")
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_vae_constructor_survives_garbage(data):
    call_with_garbage(vaefast.VAE, data)


@pytest.mark.skipif(not hasattr(vaefast, "VAE"), reason="vaefast.VAE not available")
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fit_survives_garbage(data):
    model = vaefast.VAE(6, hidden=(5,), latent_dim=2, seed=0)
    X = np.random.default_rng(0).uniform(size=(10, 6)).astype(np.float32)
    kwargs = {name: data.draw(garbage, label=name)
              for name in ("epochs", "batch_size", "learning_rate", "optimizer", "shuffle")
              if data.draw(st.booleans())}
    if "epochs" in kwargs and isinstance(kwargs["epochs"], int) and not isinstance(
            kwargs["epochs"], bool):
        kwargs["epochs"] = max(-1, min(kwargs["epochs"], 2))
    try:
        model.fit(X, progress=False, **kwargs)
    except CLEAN:
        pass
    # trained, rejected or diverged: the weights are never left non-finite
    weights = model.get_weights()
    assert all(np.isfinite(w).all() for w in weights.values())
