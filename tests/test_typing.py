"""The typed API: vaefast/_core.pyi says what the compiled binding has.

The stub is hand-written, so it can drift from _core.pyx and its .pxi files;
these tests compare it with the module itself (names, parameter names and
which parameters have defaults), without needing mypy. .ci/typecheck runs
mypy.stubtest (types too) and mypy --strict on the package.
"""

import ast
import inspect
import pathlib
import types

import numpy as np
import pytest

import vaefast
from vaefast import _core

STUB = pathlib.Path(vaefast.__file__).with_name("_core.pyi")


def _stub_tree():
    return ast.parse(STUB.read_text(encoding="utf-8"))


def _public(names):
    return {n for n in names if not n.startswith("_")}


def _stub_params(fn):
    """(name, has default) of each parameter of a stub def, `self` dropped."""
    a = fn.args
    positional = a.posonlyargs + a.args
    n_plain = len(positional) - len(a.defaults)
    out = [(p.arg, i >= n_plain) for i, p in enumerate(positional)]
    if a.vararg is not None:
        out.append(("*" + a.vararg.arg, False))
    out += [(p.arg, d is not None) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    return [p for p in out if p[0] != "self"]


def _runtime_params(obj):
    """The same list for a compiled function, from inspect.signature."""
    out = []
    for p in inspect.signature(obj).parameters.values():
        name = "*" + p.name if p.kind is p.VAR_POSITIONAL else p.name
        out.append((name, p.default is not p.empty))
    return [p for p in out if p[0] != "self"]


def _stub_module_names():
    names = set()
    for node in _stub_tree().body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _stub_class(name):
    for node in _stub_tree().body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"class {name} is not in {STUB.name}")


def test_py_typed_marker_ships_with_the_package():
    # PEP 561: without the marker, type checkers ignore the annotations.
    assert pathlib.Path(vaefast.__file__).with_name("py.typed").is_file()
    assert STUB.is_file()


def test_stub_names_match_the_binding():
    runtime = {n for n in _public(dir(_core))
               if not isinstance(getattr(_core, n), types.ModuleType)}
    stub = _public(_stub_module_names())
    assert sorted(runtime - stub) == [], "in _core but missing from _core.pyi"
    assert sorted(stub - runtime) == [], "in _core.pyi but not in _core"


def test_stub_function_parameters_match_the_binding():
    checked = 0
    for node in _stub_tree().body:
        if isinstance(node, ast.FunctionDef):
            assert _stub_params(node) == _runtime_params(getattr(_core, node.name)), node.name
            checked += 1
    runtime_functions = [n for n in _public(dir(_core)) if callable(getattr(_core, n))
                         and not isinstance(getattr(_core, n), type)]
    assert checked == len(runtime_functions) > 30  # every wrapper of the .pxi files


@pytest.mark.parametrize("cls", ["VAECore", "_ReadSession"])
def test_stub_methods_match_the_binding(cls):
    stub = _stub_class(cls)
    runtime_cls = getattr(_core, cls)
    methods = {n.name: n for n in stub.body if isinstance(n, ast.FunctionDef)}
    runtime = {n for n, v in vars(runtime_cls).items()
               if callable(v) and (not n.startswith("__") or n in ("__enter__", "__exit__"))}
    if cls == "_ReadSession":
        runtime.add("__init__")  # a plain Python class: its __init__ is introspectable
    assert sorted(runtime - set(methods)) == []
    assert sorted(set(methods) - runtime - {"__init__"}) == []
    for name, node in methods.items():
        if cls == "VAECore" and name == "__init__":
            continue  # __cinit__ hides its signature: see the next test
        assert _stub_params(node) == _runtime_params(getattr(runtime_cls, name)), name


def _is_final(annotation):
    return (isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name)
            and annotation.value.id == "Final")


def test_stub_attributes_match_the_binding():
    """The stub's VAECore attributes are the binding's; those it marks Final
    are read-only there (cdef readonly), the others writable (cdef public)."""
    stub = _stub_class("VAECore")
    attrs = {n.target.id: _is_final(n.annotation) for n in stub.body
             if isinstance(n, ast.AnnAssign)}
    runtime = {n for n, v in vars(_core.VAECore).items()
               if type(v).__name__ == "getset_descriptor" and not n.startswith("__")}
    assert set(attrs) == runtime
    core = _core.VAECore(6, [4], [4], 2, 0, 1.0)
    for name, final in attrs.items():
        if final:
            with pytest.raises(AttributeError):
                setattr(core, name, 1)
        else:
            setattr(core, name, 3)
            assert getattr(core, name) == 3
    assert sum(attrs.values()) == len(attrs) - 1  # only `step` is writable


def test_stub_constructor_keywords_are_the_bindings():
    """Cython does not expose __cinit__'s signature: call it with the stub's
    parameter names as keywords, so a renamed parameter fails here."""
    init = next(n for n in _stub_class("VAECore").body
                if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    names = [name for name, _ in _stub_params(init)]
    values = dict(n_features=6, enc_hidden=[4], dec_hidden=[5], latent_dim=2, likelihood=0,
                  beta=1.0, n_conditions=0, variance="unit", categorical=(), deep=True,
                  encode=False, dispersion="gene", dispersion_covariate=None,
                  dispersion_levels=None)
    assert names == list(values)
    core = _core.VAECore(**values)
    assert (core.n_features, core.latent_dim, core.n_conditions) == (6, 2, 0)
    with pytest.raises(TypeError):
        _core.VAECore(**values, not_a_parameter=1)


def test_stub_constants_have_the_stated_types():
    """Spot-check the module constants' annotations against their values."""
    assert isinstance(_core.ISA_NAMES, tuple) and all(isinstance(n, str) for n in _core.ISA_NAMES)
    assert all(isinstance(v, float) for v in _core.LIKELIHOOD_LIMITS.values())
    assert all(isinstance(v, int) for v in _core.COUNT_CODES.values())
    lo, hi = _core.LOGVAR_RANGE
    assert isinstance(lo, float) and isinstance(hi, float) and lo < hi
    assert {type(_core.PARAMS), type(_core.GRADS), type(_core.NONFINITE_STATUS)} == {int}
    mu, lv = _core.VAECore(6, [4], [4], 2, 0, 1.0).encode(np.zeros((3, 6), np.float32))
    assert mu.dtype == lv.dtype == np.float32 and mu.shape == (3, 2)


def test_typed_fit_signature_is_the_option_table():
    """model.py declares VAE.fit's parameters for type checkers (under
    TYPE_CHECKING); at run time they come from vaefast/_fit_options.py's
    table. Same names, order and defaults, or a new option is untyped."""
    from vaefast import _fit_options, model

    tree = ast.parse(pathlib.Path(model.__file__).read_text(encoding="utf-8"))
    typed = [node for node in ast.walk(tree) if isinstance(node, ast.If)
             and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
             for node in node.body if isinstance(node, ast.FunctionDef) and node.name == "fit"]
    assert len(typed) == 1
    args = typed[0].args
    defaults = [None] * (len(args.args) - len(args.defaults)) + args.defaults
    declared = [(a.arg, None if d is None else ast.literal_eval(d))
                for a, d in zip(args.args, defaults)]
    runtime = [(p.name, None if p.default is p.empty else p.default)
               for p in _fit_options.SIGNATURE.parameters.values()]
    assert declared == runtime
    assert not (args.vararg or args.kwarg or args.kwonlyargs)
    assert inspect.signature(vaefast.VAE.fit) == _fit_options.SIGNATURE  # what users see
