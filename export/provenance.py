"""What every artifact's manifest says about how and when it was made."""

from __future__ import annotations

import importlib.metadata
import sys
from datetime import datetime, timezone

import facestyle


def versions(*distributions: str) -> dict[str, str]:
    """facestyle's version and each installed distribution's (``"absent"`` where it is not installed)."""
    out = {"facestyle": facestyle.__version__}
    for name in distributions:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def built_at() -> str:
    """Now, in UTC, to the second (ISO 8601)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def log(message: str) -> None:
    """Build progress on stderr (stdout carries the result table)."""
    print(message, file=sys.stderr, flush=True)
