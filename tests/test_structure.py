"""The shape of the tree: no import circles, no catch-all modules, the runtime free of the export side.

Imports are read from the source with ``ast`` (function-level imports included: a lazy import still
ties two modules together), so these checks need nothing installed beyond the standard library.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ROOTS = {"facestyle": REPO / "runtime", "facestyle.export": REPO / "export"}
MAX_LINES = 600
# The runtime may reach the export side only lazily, and only where the architecture says so: the CLI
# commands that build or train, a missing TensorRT engine rebuilt from its ONNX, and the benchmark's
# PyTorch-eager reference backend.
RUNTIME_TO_EXPORT_ALLOWED = ("facestyle.cli", "facestyle.backends.trt", "facestyle.bench")


def _modules() -> dict[str, Path]:
    found = {}
    for package, root in ROOTS.items():
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if package == "facestyle" and name.startswith("facestyle.export"):
                continue  # not a runtime module: runtime/ holds no export package
            found[name] = path
    return found


MODULES = _modules()


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    base = package.split(".")
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path) -> list[tuple[str, bool]]:
    """(imported facestyle module, at module level?) for every import statement of ``module``."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(n) for n in tree.body} | {id(n) for s in tree.body if isinstance(s, ast.If) for n in s.body}
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node)
            names = [target] + [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]  # "facestyle.kinds.KINDS" -> "facestyle.kinds"
            if name and name != module:
                out.append((name, id(node) in top_level))
    return out


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        edges = set()
        for target, _ in _imports(module, path):
            crosses = not module.startswith("facestyle.export") and target.startswith("facestyle.export")
            if not crosses:  # runtime -> export edges are checked (lazy and allowed) below, not as cycles
                edges.add(target)
        graph[module] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_modules_are_found():
    assert {"facestyle.kinds", "facestyle.capabilities", "facestyle.export.kinds", "facestyle.export.build"} <= set(MODULES)


def test_no_import_circles():
    """Package ``__init__`` modules that re-export their submodules count too: a submodule that imports
    its own package's ``__init__`` closes a circle."""
    assert _cycles(_graph()) == []


def test_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_the_line_limit(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module]} has {lines} lines (limit {MAX_LINES}): split it by job"


def test_runtime_reaches_export_only_lazily_and_where_allowed():
    offending = []
    for module, path in MODULES.items():
        if module.startswith("facestyle.export"):
            continue
        for target, top_level in _imports(module, path):
            if not target.startswith("facestyle.export"):
                continue
            allowed = any(module == a or module.startswith(a + ".") for a in RUNTIME_TO_EXPORT_ALLOWED)
            if top_level or not allowed:
                offending.append(f"{module} -> {target}" + (" (at module level)" if top_level else ""))
    assert offending == []
