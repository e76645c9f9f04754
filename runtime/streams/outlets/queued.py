"""An outlet's bounded queue and its sending thread: ``send`` never waits for the network.

The queue holds ``queue_size`` events. When it is full the oldest queued event is dropped and counted: a
receiver that comes back after an outage gets the latest events (who is in view now), and the count says how
many it missed. Every event given to ``send`` ends counted once: sent, dropped (queue full, or still queued
when the outlet closed) or failed (refused by the receiver, or retries exhausted).
"""

from __future__ import annotations

import threading
from collections import deque

from ...video import check_count

DEFAULT_QUEUE_SIZE = 1000  # events; at a few events a second, minutes of an outage
SENT, FAILED, DROPPED = "sent", "failed", "dropped"


class QueuedOutlet:
    """Base of the outlets: subclasses deliver one event in ``_deliver`` (on the outlet's thread) and return
    SENT, FAILED or DROPPED (DROPPED when the outlet is closing); ``self._stopping`` is set when they must give up."""

    kind = "outlet"

    def __init__(self, target: str, queue_size: int = DEFAULT_QUEUE_SIZE):
        check_count("queue_size", queue_size, minimum=1)
        self.target, self.queue_size = target, queue_size
        self._queue: deque = deque()
        self._changed = threading.Condition()
        self._counts = {SENT: 0, DROPPED: 0, FAILED: 0}
        self._busy = self._closing = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{self.kind} {target}", daemon=True)

    def _start(self) -> None:
        self._thread.start()

    @property
    def name(self) -> str:
        return f"{self.kind} {self.target}"

    def send(self, event) -> None:
        """Queue ``event`` for delivery and return at once; the oldest queued event is dropped when full."""
        with self._changed:
            if self._closing:
                self._counts[DROPPED] += 1
                return
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self._counts[DROPPED] += 1
            self._queue.append(self._prepare(event))
            self._changed.notify_all()

    def _prepare(self, event):
        """What the thread delivers for ``event``, made on the caller's thread (cheap, in event order)."""
        return event

    def counts(self) -> dict:
        """{"sent", "dropped", "failed", "queued"} so far."""
        with self._changed:
            return {**self._counts, "queued": len(self._queue) + self._busy}

    def close(self, timeout: float = 10.0) -> dict:
        """Deliver what is queued for up to ``timeout`` seconds, then drop the rest; returns :meth:`counts`."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            self._changed.wait_for(lambda: not self._queue and not self._busy, timeout)
            self._counts[DROPPED] += len(self._queue)
            self._queue.clear()
        self._stopping.set()  # an event still being tried gives up, counted as dropped
        self._wake()
        if self._thread.is_alive():
            self._thread.join(self._join_timeout())
        self._stop()
        return self.counts()

    def _join_timeout(self) -> float:
        return 5.0

    def _wake(self) -> None:
        """Wake the outlet's thread where it waits on something other than ``_stopping``."""

    def _stop(self) -> None:
        """Release the outlet's connection, after its thread ended."""

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queue or self._closing)
                if not self._queue:
                    return
                item, self._busy = self._queue.popleft(), True
            try:
                outcome = self._deliver(item)
            except Exception:  # noqa: BLE001 (an outlet's fault must not end its thread and lose the rest)
                outcome = FAILED
            with self._changed:
                self._counts[outcome] += 1
                self._busy = False
                self._changed.notify_all()

    def _deliver(self, item) -> str:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
