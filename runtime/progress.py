"""A dependency-free progress bar on stderr for long work (redrawn in place on a terminal)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, label: str, stream=None, enabled: bool = True):
        self.total, self.label, self.count = max(total, 0), label, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.total > 0
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.perf_counter()
        self._last_decile = -1
        self.postfix = ""

    def update(self, n: int = 1, postfix: str = "") -> None:
        self.count += n
        self.postfix = postfix
        if not self.enabled:
            return
        decile = 10 * self.count // self.total
        if self.tty or decile != self._last_decile or self.count == self.total:
            self._last_decile = decile
            self._draw()

    def _draw(self) -> None:
        elapsed = time.perf_counter() - self.started
        rate = self.count / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else 0.0
        filled = 30 * self.count // self.total
        line = f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.count}/{self.total} {rate:.1f}/s ETA {eta:.0f}s {self.postfix}".rstrip()
        end = "\r" if self.tty and self.count < self.total else "\n"
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled and self.tty and self.count < self.total:
            self.stream.write("\n")
