"""What an outlet sends for an event: its JSON, with any password in a source URL masked."""

from __future__ import annotations

import re
from urllib.parse import urlsplit


def masked(source: str) -> str:
    """``rtsp://admin:secret@cam/stream`` -> ``rtsp://admin:***@cam/stream``: camera passwords stay home."""
    if "://" not in source:
        return source
    parts = urlsplit(source)
    if parts.password is None:
        return source
    return source.replace(f":{parts.password}@", ":***@", 1)


def topic_safe(source: str) -> str:
    """One MQTT topic level for a source: no ``/ + #`` (nor anything else but letters, digits, ``. _ -``), and no
    user or password of a URL. ``rtsp://admin:pw@cam1:554/live`` -> ``rtsp_cam1_554_live``."""
    if "://" in source:
        parts = urlsplit(source)
        source = "/".join(str(v) for v in (parts.scheme, parts.hostname, parts.port, parts.path) if v)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", source).strip("_") or "source"


def event_payload(event) -> dict:
    """The event's JSON (see :class:`facestyle.streams.Event`), its source's password masked."""
    return {**event.to_json(), "source": masked(event.source)}
