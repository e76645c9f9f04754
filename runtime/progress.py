"""A dependency-free progress bar on stderr for long work (redrawn in place on a terminal).

Shown only where someone watches: when the stream is a terminal, and there only once the work has run
``delay`` seconds (a command that ends sooner prints nothing). ``FACESTYLE_PROGRESS=1`` forces it (from the
start, one line per tenth of the work where the stream is not a terminal, as in a CI log); ``=0`` turns it off.
"""

from __future__ import annotations

import os
import sys
import time

ENV = "FACESTYLE_PROGRESS"
DEFAULT_DELAY_S = 2.0


def _wanted(stream) -> tuple[bool, bool]:
    """(shown, forced) for ``stream``, from $FACESTYLE_PROGRESS, else whether it is a terminal."""
    setting = os.environ.get(ENV, "").strip().lower()
    if setting in ("1", "on", "yes", "always"):
        return True, True
    if setting in ("0", "off", "no", "never"):
        return False, False
    return hasattr(stream, "isatty") and stream.isatty(), False


class Progress:
    def __init__(self, total: int, label: str, stream=None, enabled: bool = True, delay: float = DEFAULT_DELAY_S):
        self.total, self.label, self.count = max(total, 0), label, 0
        self.stream = stream or sys.stderr
        shown, forced = _wanted(self.stream)
        self.enabled = enabled and self.total > 0 and shown
        self.delay = 0.0 if forced else delay
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.perf_counter()
        self._last_decile = -1
        self._drawn = False
        self.postfix = ""

    def update(self, n: int = 1, postfix: str = "") -> None:
        self.count += n
        self.postfix = postfix
        if not self.enabled:
            return
        if not self._drawn and time.perf_counter() - self.started < self.delay:
            return  # short work draws nothing
        decile = 10 * self.count // self.total
        if self.tty or decile != self._last_decile or self.count == self.total:
            self._last_decile = decile
            self._draw()

    def _draw(self) -> None:
        self._drawn = True
        elapsed = time.perf_counter() - self.started
        rate = self.count / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else 0.0
        filled = 30 * min(self.count, self.total) // self.total
        line = (f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.count}/{self.total} "
                f"{rate:.1f}/s ETA {eta:.0f}s {self.postfix}").rstrip()
        end = "\r" if self.tty and self.count < self.total else "\n"
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self._drawn and self.tty and self.count < self.total:
            self.stream.write("\n")
