"""MicroBatcher: many threads submit single items, one worker runs them in batches.

Inference engines are far cheaper per item in batches, but apps (a camera per thread, a web
server's request handlers) have one item at a time. The batcher queues items from any thread,
groups them (up to ``max_batch``, or whatever arrived within ``max_delay_ms`` of the batch's
first item), calls ``process_batch`` once per group on its own worker thread and resolves each
caller's ``concurrent.futures.Future``.

>>> with MicroBatcher(lambda xs: [x * 2 for x in xs], max_batch=8) as batcher:
...     futures = [batcher.submit(i) for i in range(3)]
...     [f.result() for f in futures]
[0, 2, 4]

Error isolation: one item's fault never fails its batch-mates.

- ``process_batch`` may put an exception instance in place of an item's result: only that
  item's future gets it.
- If ``process_batch`` raises for a batch of several items, each item is retried alone, so
  only the items that fail on their own get an exception (their own). A faulty item thus
  costs one extra call per batch-mate, a price paid only when something is wrong.

Shutdown: ``close()`` stops new submissions (``BatcherClosedError``), finishes everything
already queued and joins the worker; ``close(cancel_pending=True)`` cancels the queued futures
instead (the batch already running still finishes). ``close`` is idempotent, and the context
manager calls it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import BatcherClosedError, BatcherConfigError, BatcherError, BatcherFullError

Item = TypeVar("Item")
Result = TypeVar("Result")

WHEN_FULL_POLICIES = ("block", "reject")


@dataclass(frozen=True)
class BatcherStats:
    """A snapshot of what a batcher has done, for benchmarks and logs."""

    batches_run: int  # calls of process_batch on whole batches (retries of single items not counted)
    items_processed: int  # items whose future got a result or an exception
    retried_batches: int  # batches that raised and were retried one item at a time
    largest_batch: int

    @property
    def mean_batch_size(self) -> float:
        return self.items_processed / self.batches_run if self.batches_run else 0.0


@dataclass
class _Request:
    item: Any
    future: Future
    arrived: float  # time.monotonic() at submit: the batch's delay counts from its first item


class MicroBatcher(Generic[Item, Result]):
    """Groups single items from many threads into calls of ``process_batch``.

    process_batch: list of items -> sequence of results, one per item, in order (an exception
        instance in place of a result fails that item only).
    max_batch: the most items in one call.
    max_delay_ms: how long a batch waits for more items after its first one arrived.
    max_queue: the most items waiting; beyond it ``when_full`` applies.
    when_full: ``"block"`` (submit waits for room, up to its ``timeout``) or ``"reject"``
        (submit raises ``BatcherFullError`` at once).
    check_item: called on each item in the submitting thread; what it raises, submit raises,
        and the item is not queued (so a bad input fails at once, in its caller).
    name: names the worker thread and the errors' messages.
    """

    def __init__(
        self,
        process_batch: Callable[[list[Item]], Sequence[Result]],
        max_batch: int = 32,
        max_delay_ms: float = 5.0,
        max_queue: int = 1024,
        when_full: str = "block",
        check_item: Callable[[Item], Any] | None = None,
        name: str = "micro-batcher",
    ):
        _check_settings(max_batch, max_delay_ms, max_queue, when_full)
        self.process_batch = process_batch
        self.max_batch = int(max_batch)
        self.max_delay_s = float(max_delay_ms) / 1000.0
        self.max_queue = int(max_queue)
        self.when_full = when_full
        self.check_item = check_item
        self.name = name
        self._queue: deque[_Request] = deque()
        self._lock = threading.Lock()
        self._has_items = threading.Condition(self._lock)  # the worker waits on it
        self._has_room = threading.Condition(self._lock)  # blocked submitters wait on it
        self._closing = False
        self._batches_run = self._items_processed = self._retried_batches = self._largest_batch = 0
        # A daemon, so that a batcher nobody closed cannot hang the interpreter's exit; close() is
        # what guarantees that queued work is finished.
        self._worker = threading.Thread(target=self._work, name=f"{name}-worker", daemon=True)
        self._worker.start()

    # -- callers' side ----------------------------------------------------------------------
    def submit(self, item: Item, timeout: float | None = None) -> Future:
        """Queue one item; its future resolves to its result (or its exception).

        timeout: in ``"block"`` mode, the most seconds to wait for room (None: as long as it takes).
        Raises BatcherFullError (queue full: at once in ``"reject"`` mode, after ``timeout`` in
        ``"block"`` mode), BatcherClosedError (closed, or closed while waiting for room), or
        whatever ``check_item`` raises.
        """
        if self.check_item is not None:
            self.check_item(item)
        with self._lock:
            self._wait_for_room(timeout)
            future: Future = Future()
            self._queue.append(_Request(item, future, time.monotonic()))
            self._has_items.notify()
        return future

    def _wait_for_room(self, timeout: float | None) -> None:
        """With the lock held: return once the queue has room, or raise why it will not."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._closing:
                raise BatcherClosedError(f"{self.name}: closed, it takes no more requests")
            if len(self._queue) < self.max_queue:
                return
            if self.when_full == "reject":
                raise BatcherFullError(f"{self.name}: queue full ({self.max_queue} requests waiting); request rejected")
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise BatcherFullError(
                    f"{self.name}: queue full ({self.max_queue} requests waiting) for {timeout:g} s; request not queued"
                )
            self._has_room.wait(remaining)

    def close(self, cancel_pending: bool = False, timeout: float | None = None) -> None:
        """Stop taking requests, finish (or, with cancel_pending, cancel) the queued ones, join the worker.

        Idempotent. Submitters blocked for room get BatcherClosedError. timeout bounds the join
        (a process_batch that never returns would otherwise hold close forever).
        """
        with self._lock:
            self._closing = True
            if cancel_pending:
                cancelled = list(self._queue)
                self._queue.clear()
            self._has_items.notify_all()
            self._has_room.notify_all()
        if cancel_pending:
            for request in cancelled:
                # cancel() alone does not wake concurrent.futures.wait() / as_completed(); this does.
                request.future.cancel()
                request.future.set_running_or_notify_cancel()
        # process_batch itself may close its batcher: a thread cannot join itself.
        if threading.current_thread() is not self._worker:
            self._worker.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closing

    def stats(self) -> BatcherStats:
        with self._lock:
            return BatcherStats(self._batches_run, self._items_processed, self._retried_batches, self._largest_batch)

    def __enter__(self) -> MicroBatcher[Item, Result]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the worker's side --------------------------------------------------------------------
    def _work(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                self._run(batch)
        finally:
            # Only reached early if the worker itself broke (a bug, or a BaseException from
            # process_batch): fail what is queued rather than leave its callers waiting forever.
            self._fail_queued(BatcherClosedError(f"{self.name}: worker stopped; request not processed"))

    def _next_batch(self) -> list[_Request] | None:
        """Block until a batch is due (full, its delay over, or closing); None once closed and drained."""
        with self._lock:
            while not self._queue and not self._closing:
                self._has_items.wait()
            if not self._queue:
                return None
            deadline = self._queue[0].arrived + self.max_delay_s
            while len(self._queue) < self.max_batch and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._has_items.wait(remaining)
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            self._has_room.notify(len(batch))
            return batch

    def _run(self, batch: list[_Request]) -> None:
        # Futures their callers cancelled while queued are dropped here, before any work.
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results, retried = self._results_for(live)
        except BaseException as fatal:  # not an Exception (e.g. SystemExit): the worker stops, nobody waits forever
            for request in live:
                request.future.set_exception(fatal)
            raise
        for request, result in zip(live, results):
            if isinstance(result, BaseException):
                request.future.set_exception(result)
            else:
                request.future.set_result(result)
        self._count(len(live), retried)

    def _results_for(self, requests: list[_Request]) -> tuple[Sequence[Any], bool]:
        """One result or exception per request, and whether the batch had to be retried item by item."""
        try:
            return self._call(requests), False
        except Exception as batch_error:
            if len(requests) == 1:
                return [batch_error], False
            return [self._call_alone(r) for r in requests], True

    def _count(self, batch_size: int, retried: bool) -> None:
        with self._lock:
            self._batches_run += 1
            self._items_processed += batch_size
            self._retried_batches += retried
            self._largest_batch = max(self._largest_batch, batch_size)

    def _call(self, requests: list[_Request]) -> Sequence[Any]:
        results = self.process_batch([r.item for r in requests])
        if results is None or len(results) != len(requests):
            got = "None" if results is None else f"{len(results)} results"
            raise BatcherError(f"{self.name}: process_batch returned {got} for a batch of {len(requests)} items")
        return results

    def _call_alone(self, request: _Request) -> Any:
        try:
            return self._call([request])[0]
        except Exception as error:
            return error

    def _fail_queued(self, error: BaseException) -> None:
        with self._lock:
            self._closing = True
            stranded = list(self._queue)
            self._queue.clear()
            self._has_room.notify_all()
        for request in stranded:
            if request.future.set_running_or_notify_cancel():
                request.future.set_exception(error)


def _check_settings(max_batch, max_delay_ms, max_queue, when_full) -> None:
    if int(max_batch) < 1:
        raise BatcherConfigError(f"max_batch must be at least 1, got {max_batch}")
    if float(max_delay_ms) < 0:
        raise BatcherConfigError(f"max_delay_ms must be >= 0, got {max_delay_ms}")
    if int(max_queue) < 1:
        raise BatcherConfigError(f"max_queue must be at least 1, got {max_queue}")
    if when_full not in WHEN_FULL_POLICIES:
        raise BatcherConfigError(f"when_full must be one of {', '.join(WHEN_FULL_POLICIES)}, got {when_full!r}")
