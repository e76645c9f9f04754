"""Where a watch's results go: JSON lines (one per analysed frame and source, one per event)."""

from __future__ import annotations

import json

from .events import FrameResult


class JsonLines:
    """Writes each analysed frame's result and each event as one JSON line to a text file object, flushed at
    once so a reader following a live camera sees each as it happens."""

    def __init__(self, stream):
        self.stream = stream

    def __call__(self, item) -> None:
        if isinstance(item, FrameResult) and not item.analysed:
            return
        self.stream.write(json.dumps(item.to_json()) + "\n")
        self.stream.flush()
