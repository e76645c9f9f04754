"""Everything about the distribution is in pyproject.toml except its package list, made here.

The runtime (``runtime/``) installs as ``facestyle`` and the export side (``export/``) as ``facestyle.export``;
setuptools' automatic discovery can find the folders but cannot rename them, so every folder under those roots
that holds an ``__init__.py`` becomes the package of the same path under the root's name.
"""

from pathlib import Path

from setuptools import setup

ROOTS = {"facestyle": "runtime", "facestyle.export": "export"}  # the same mapping as [tool.setuptools.package-dir]


def packages() -> list[str]:
    here = Path(__file__).resolve().parent
    found = []
    for name, folder in ROOTS.items():
        root = here / folder
        for init in sorted(root.rglob("__init__.py")):
            found.append(".".join((name, *init.parent.relative_to(root).parts)))
    return found


setup(packages=packages())
