"""Where facestyle keeps what it can remake: one rule for every cache folder.

``cache_dir("ort-optimized")`` is ``$FACESTYLE_CACHE/ort-optimized`` when ``FACESTYLE_CACHE`` is set,
else the user's cache folder for facestyle (platformdirs: ``$XDG_CACHE_HOME/facestyle`` or
``~/.cache/facestyle`` on Linux, ``~/Library/Caches/facestyle`` on macOS, ``%LOCALAPPDATA%`` on Windows)
``/ort-optimized``. Nothing is created here: whoever writes makes the folder, and an unwritable one only
means no cache.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "FACESTYLE_CACHE"


def cache_root() -> Path:
    """``$FACESTYLE_CACHE``, else the user's cache folder for facestyle."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    import platformdirs  # only when no folder is given: the edge install needs nothing else

    return Path(platformdirs.user_cache_dir("facestyle", appauthor=False))


def cache_dir(sub: str = "") -> Path:
    """The cache folder ``sub`` (e.g. ``"ort-optimized"``, ``"triton-venv"``) under :func:`cache_root`."""
    return cache_root() / sub if sub else cache_root()
