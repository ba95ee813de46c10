"""The package's import graph runs one way (design: csrc -> _core ->
model/train -> sklearn/cli/dask/mpi/interop), read from the source with ast.

Module-level imports must form no cycle. Imports inside functions may not
either, except the convenience methods that hand a model to a layer above
it: VAE.to_onnx -> vaefast.interop (listed below, and nothing else).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vaefast"
# (importer, imported) pairs allowed to point upwards, each a method's lazy
# entry point into an optional layer.
UPWARD_ENTRY_POINTS = {("vaefast.model", "vaefast.interop")}


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


def import_graph(module_level_only):
    files = module_files()
    graph = {}
    for name, path in files.items():
        edges = set()

        def visit(node, in_function):
            for child in ast.iter_child_nodes(node):
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


def test_lazy_imports_have_no_cycle_beyond_the_listed_entry_points():
    graph = import_graph(module_level_only=False)
    for importer, imported in UPWARD_ENTRY_POINTS:
        assert imported in graph[importer], f"stale entry: {importer} -> {imported}"
        graph[importer].discard(imported)
    assert find_cycle(graph) is None


def test_model_does_not_import_the_test_oracle():
    graph = import_graph(module_level_only=False)
    assert "vaefast.reference" not in graph["vaefast.model"]
