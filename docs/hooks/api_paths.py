"""MkDocs hook: let mkdocstrings find the installed ``facestyle`` package, not the ``facestyle`` command.

Run as ``mkdocs build``, Python puts the scripts folder first on ``sys.path``; the ``facestyle`` console script
lives there, and griffe takes that file for the package. Dropping the folders that hold such a script (and no
package) from the search path leaves the real package, installed or editable, to be found.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "facestyle"


def on_startup(command, dirty):
    sys.path[:] = [p for p in sys.path if not (Path(p or ".") / PACKAGE).is_file()]

