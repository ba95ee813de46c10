"""The package's import graph runs one way (design: csrc -> _core ->
model/train -> sklearn/cli/dask/mpi/interop), read from the source with ast.

Imports form no cycle, those inside functions included; the model imports
no engine or exporter (they wrap it); the NumPy reference reaches neither the
model nor the compiled binding; only the model and its internal interface
(vaefast/_internals.py) touch a model's private attributes.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vaefast"
# Modules that wrap a model from above: the model must import none of them.
ABOVE_THE_MODEL = ("vaefast.dask", "vaefast.distributed", "vaefast.interop", "vaefast.sklearn",
                   "vaefast.cli", "vaefast.training.data_parallel",
                   "vaefast.training.streaming")


def module_files():
    if not PACKAGE.is_dir():
        pytest.skip("the vaefast source tree is not beside the tests")
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    return files


def imported_modules(name, path, node, files):
    """vaefast modules named by one import statement of module `name`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("vaefast")]
    if node.level:
        base = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(base + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if not base.startswith("vaefast"):
        return []
    # `from . import x` names a module x (the compiled _core included);
    # `from .m import f` names module m.
    return [f"{base}.{a.name}" if (f"{base}.{a.name}" in files or not node.module) else base
            for a in node.names]


def _is_type_checking_block(node):
    """`if TYPE_CHECKING:` (or typing.TYPE_CHECKING) without an else."""
    if not isinstance(node, ast.If) or node.orelse:
        return False
    test = node.test
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def import_graph(module_level_only):

    files = module_files()
    graph = {}
    for name, path in files.items():
        edges = set()

        def visit(node, in_function):
            for child in ast.iter_child_nodes(node):
                if _is_type_checking_block(child):
                    continue  # imports for annotations only: never run
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    if not (module_level_only and in_function):
                        edges.update(imported_modules(name, path, child, files))
                visit(child, in_function or isinstance(
                    child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

        visit(ast.parse(path.read_text()), False)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph):
    """One cycle as a list of modules, or None (iterative DFS, 3 colours)."""
    colour = dict.fromkeys(graph, 0)
    for root in graph:
        if colour[root]:
            continue
        stack = [(root, iter(sorted(graph[root])))]
        path = [root]
        colour[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(child, 2) == 1:
                return path[path.index(child):] + [child]
            elif colour.get(child, 2) == 0:
                colour[child] = 1
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_module_level_imports_have_no_cycle():
    assert find_cycle(import_graph(module_level_only=True)) is None


def test_lazy_imports_have_no_cycle_either():
    assert find_cycle(import_graph(module_level_only=False)) is None


def test_model_imports_no_engine_or_exporter():
    imported = import_graph(module_level_only=False)["vaefast.model"]
    wrong = sorted(m for m in imported
                   if any(m == a or m.startswith(a + ".") for a in ABOVE_THE_MODEL))
    assert not wrong


MODEL_PRIVATES = {"_core", "_layout", "_lik", "_check_X", "_check_c", "_check_size_factors",
                  "_check_Z", "_check_eps", "_exclusive", "_named_from_flat", "_extra_param",
                  "_scratch", "_train_lock", "_tls", "_decode_raw", "_log_px"}


def test_only_the_model_and_its_interface_touch_its_private_attributes():
    """x._core, x._layout, ... on anything but self, outside model.py and
    _internals.py, is a reach into the model's inside."""
    allowed = {"vaefast.model", "vaefast._internals"}
    reaches = []
    for name, path in module_files().items():
        if name in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr in MODEL_PRIVATES
                    and not (isinstance(node.value, ast.Name) and node.value.id == "self")):
                reaches.append(f"{name}:{node.lineno} .{node.attr}")
    assert not reaches


def test_model_does_not_import_the_test_oracle():
    graph = import_graph(module_level_only=False)
    assert "vaefast.reference" not in graph["vaefast.model"]


def reachable(graph, start):
    """Every module `start` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for child in graph.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def test_reach_finds_indirect_imports():
    assert reachable({"a": {"b"}, "b": {"c"}, "c": set()}, "a") == {"b", "c"}


def test_reference_reaches_neither_the_model_nor_the_binding():
    """The oracle of every test imports plain data only (the layout, the
    likelihood registry), by any chain of imports, lazy ones included; the
    package's __init__, which Python runs first, is not counted."""
    graph = import_graph(module_level_only=False)
    reached = reachable(graph, "vaefast.reference")
    assert reached, "the reference imports the layout at least"
    assert "vaefast.model" not in reached
    assert "vaefast._core" not in reached
    assert "vaefast" not in reached


def string_literals(path):
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_each_likelihood_name_is_written_in_at_most_two_modules():
    """A likelihood is one registry record: its name, as a string literal
    (docstrings and messages that mention it aside), stands in the registry
    and at most one other module (the NumPy reference twin)."""
    from vaefast._spec import likelihoods

    literals = {name: string_literals(path) for name, path in module_files().items()}
    for lik in likelihoods.REGISTRY.values():
        writers = sorted(m for m, found in literals.items() if lik.name in found)
        assert "vaefast._spec.likelihoods" in writers
        assert len(writers) <= 2, f"{lik.name!r} is written in {writers}"


def test_registry_constants_match_the_binding():
    """The registry and limits hold the C core's enum codes and clamps as
    plain numbers (so the reference needs no binding); they must be the
    binding's."""
    from vaefast import _core
    from vaefast._spec import likelihoods, limits

    assert {lik.c_enum: lik.code for lik in likelihoods.REGISTRY.values()} == \
        _core.LIKELIHOOD_ENUM
    assert limits.LIMITS == _core.LIKELIHOOD_LIMITS
    assert limits.LOGVAR_RANGE == _core.LOGVAR_RANGE


def test_no_source_file_is_over_600_lines():
    module_files()  # skips without the source tree
    sizes = {p.name: len(p.read_text().splitlines())
             for ext in ("*.py", "*.pyx", "*.pxi", "*.pxd") for p in PACKAGE.rglob(ext)}
    assert sizes and max(sizes.values()) <= 600, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
