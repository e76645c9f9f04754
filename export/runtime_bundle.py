"""The facestyle runtime modules a Python file needs, copied beside it, so that it runs where facestyle is not
installed (a Triton Python-backend model in a stock tritonserver container, an air-gapped site).

The modules are found statically, from the source: every ``import`` / ``from ... import`` of a ``facestyle``
module, at module level or inside a function (the runtime imports heavy things lazily, and a lazy import
still has to resolve when it runs), and every ``"facestyle.module:Name"`` the kinds table resolves by name,
followed transitively, with the ``__init__.py`` of each package on the way. Only files of the runtime package
(``runtime/``, torch-free) are taken: ``facestyle.export`` (torch) lives in another folder and is never copied.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

from facestyle.errors import BadInputError

PACKAGE = "facestyle"
_RESOLVED = re.compile(r"""["'](facestyle(?:\.\w+)+):\w+["']""")  # kinds.py's "facestyle.module:Name" targets


def runtime_root() -> Path:
    """The runtime package's folder (``runtime/`` in a checkout, ``site-packages/facestyle`` installed)."""
    import facestyle

    return Path(facestyle.__file__).resolve().parent


def _source_of(module: str, root: Path) -> Path | None:
    """The runtime file of ``facestyle.a.b`` (``a/b.py`` or ``a/b/__init__.py``), None outside the runtime."""
    parts = module.split(".")[1:]
    folder = root.joinpath(*parts)
    for candidate in (folder / "__init__.py", folder.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imported(path: Path, module: str) -> set[str]:
    """Every module name ``path`` imports (absolute, relative imports resolved), and ``from m import x`` as m.x
    too (x may be a submodule)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _package_of(module, path).split(".")
    names = set(_RESOLVED.findall(path.read_text()))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def _module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join((PACKAGE, *parts))


def runtime_modules(entry: Path, root: Path | None = None) -> list[Path]:
    """The runtime files ``entry`` needs, relative to the runtime folder, sorted."""
    root = root or runtime_root()
    found: dict[Path, str] = {}
    todo = [(entry.resolve(), _module_name(entry.resolve(), root) if entry.resolve().is_relative_to(root) else "__main__")]
    while todo:
        path, module = todo.pop()
        if path in found:
            continue
        found[path] = module
        parts = module.split(".")
        wanted = {".".join(parts[:i]) for i in range(1, len(parts))} | _imported(path, module)
        for name in wanted:
            source = _source_of(name, root) if name.split(".")[0] == PACKAGE else None
            if source is not None and source not in found:
                todo.append((source, name))
    return sorted(p.relative_to(root) for p in found if p.is_relative_to(root))


def copy_runtime_modules(entry: Path, folder: Path) -> list[Path]:
    """Copy what ``entry`` needs into ``folder/facestyle/...``; returns the files written, relative to ``folder``."""
    root = runtime_root()
    files = runtime_modules(entry, root)
    if Path("__init__.py") not in files:
        raise BadInputError(f"{entry}: imports no facestyle module; nothing to copy")
    written = []
    for relative in files:
        target = folder / PACKAGE / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, target)
        written.append(Path(PACKAGE) / relative)
    return written
