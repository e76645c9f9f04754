"""MicroBatcher: the mechanics with a pure-numpy process_batch, then the real embedder under load.

No test measures time: batches are formed deterministically by holding the worker at a gate while
requests queue up; the only timeouts are generous bounds that turn a hang into a failure.
"""

from __future__ import annotations

import gc
import threading
from concurrent.futures import CancelledError, wait

import numpy as np
import pytest

from facestyle.batching import MicroBatcher
from facestyle.errors import (
    BadImageError,
    BatcherClosedError,
    BatcherConfigError,
    BatcherError,
    BatcherFullError,
    FacestyleError,
)
from facestyle.face.embedder import FaceEmbedder

HANG = 10.0  # seconds: a bound that only a hang can exceed
ATOL = 1e-5  # batch composition may change the float summation order inside onnxruntime


class Gate:
    """Wraps a process_batch so the worker stops at its first batch until ``open()``: requests submitted
    meanwhile queue up and form the next batch, with no reliance on timing."""

    def __init__(self, process_batch):
        self.process_batch = process_batch
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.batches: list[list] = []

    def __call__(self, items):
        self.batches.append(list(items))
        self.entered.set()
        if not self.opened.wait(HANG):
            raise TimeoutError("test gate never opened")
        return self.process_batch(items)

    def hold(self, batcher: MicroBatcher, first_item):
        """Submit first_item and return its future once the worker is holding it at the gate."""
        future = batcher.submit(first_item)
        assert self.entered.wait(HANG), "worker never took the first item"
        return future

    def open(self):
        self.opened.set()


def doubled(items):
    return list(np.asarray(items) * 2)


def doubled_unless_negative(items):
    if any(x < 0 for x in items):
        raise ValueError(f"negative item in {items}")
    return doubled(items)


@pytest.fixture
def no_thread_left_behind():
    before = set(threading.enumerate())
    yield
    left = [t.name for t in threading.enumerate() if t not in before]
    assert not left, f"threads left behind: {left}"


# -- mechanics ---------------------------------------------------------------------------------
def test_a_lone_item_is_processed_without_waiting_for_a_full_batch(no_thread_left_behind):
    with MicroBatcher(doubled, max_batch=32, max_delay_ms=5.0) as batcher:
        assert batcher.submit(21).result(timeout=HANG) == 42
    assert batcher.stats().batches_run == 1


def test_queued_requests_form_one_batch_up_to_max_batch(no_thread_left_behind):
    gate = Gate(doubled)
    with MicroBatcher(gate, max_batch=4) as batcher:
        first = gate.hold(batcher, 0)
        futures = [batcher.submit(i) for i in range(1, 7)]
        gate.open()
        assert [f.result(timeout=HANG) for f in [first, *futures]] == [0, 2, 4, 6, 8, 10, 12]
    assert gate.batches == [[0], [1, 2, 3, 4], [5, 6]]
    stats = batcher.stats()
    assert (stats.batches_run, stats.items_processed, stats.largest_batch) == (3, 7, 4)
    assert stats.mean_batch_size == pytest.approx(7 / 3)


def test_a_failing_item_fails_only_its_own_future(no_thread_left_behind):
    gate = Gate(doubled_unless_negative)
    with MicroBatcher(gate, max_batch=8) as batcher:
        gate.hold(batcher, 0)
        good_before, bad, good_after = batcher.submit(1), batcher.submit(-1), batcher.submit(3)
        gate.open()
        with pytest.raises(ValueError, match=r"negative item in \[-1\]"):
            bad.result(timeout=HANG)
        assert (good_before.result(timeout=HANG), good_after.result(timeout=HANG)) == (2, 6)
    assert gate.batches[1] == [1, -1, 3]  # they really shared a batch before the retry
    assert batcher.stats().retried_batches == 1


def test_process_batch_may_return_an_exception_for_one_item(no_thread_left_behind):
    def reciprocal(items):
        return [ZeroDivisionError(f"item {i}: no reciprocal of 0") if x == 0 else 1 / x for i, x in enumerate(items)]

    gate = Gate(reciprocal)
    with MicroBatcher(gate) as batcher:
        gate.hold(batcher, 1)
        two, zero, four = batcher.submit(2), batcher.submit(0), batcher.submit(4)
        gate.open()
        with pytest.raises(ZeroDivisionError, match="no reciprocal of 0"):
            zero.result(timeout=HANG)
        assert (two.result(timeout=HANG), four.result(timeout=HANG)) == (0.5, 0.25)
    assert batcher.stats().retried_batches == 0


def test_a_wrong_number_of_results_fails_the_items_with_a_typed_error(no_thread_left_behind):
    with MicroBatcher(lambda items: [], name="short") as batcher:
        future = batcher.submit(1)
        with pytest.raises(BatcherError, match=r"short: process_batch returned 0 results for a batch of 1 items"):
            future.result(timeout=HANG)


def test_check_item_rejects_a_bad_item_in_the_callers_thread(no_thread_left_behind):
    def positive(x):
        if x <= 0:
            raise BadImageError(f"item must be positive, got {x}")

    with MicroBatcher(doubled, check_item=positive) as batcher:
        with pytest.raises(BadImageError, match="item must be positive, got -3"):
            batcher.submit(-3)
        assert batcher.submit(3).result(timeout=HANG) == 6
    assert batcher.stats().items_processed == 1


def test_reject_mode_raises_when_the_queue_is_full(no_thread_left_behind):
    gate = Gate(doubled)
    with MicroBatcher(gate, max_queue=2, when_full="reject", name="tiny") as batcher:
        gate.hold(batcher, 0)
        queued = [batcher.submit(1), batcher.submit(2)]
        with pytest.raises(BatcherFullError, match=r"tiny: queue full \(2 requests waiting\); request rejected"):
            batcher.submit(3)
        gate.open()
        assert [f.result(timeout=HANG) for f in queued] == [2, 4]


def test_block_mode_times_out_when_no_room_comes(no_thread_left_behind):
    gate = Gate(doubled)
    with MicroBatcher(gate, max_queue=1, when_full="block", name="tiny") as batcher:
        gate.hold(batcher, 0)
        batcher.submit(1)
        with pytest.raises(BatcherFullError, match=r"tiny: queue full \(1 requests waiting\) for 0\.05 s"):
            batcher.submit(2, timeout=0.05)
        gate.open()


def test_block_mode_waits_for_room_then_queues(no_thread_left_behind):
    gate = Gate(doubled)
    with MicroBatcher(gate, max_queue=1, when_full="block") as batcher:
        gate.hold(batcher, 0)
        batcher.submit(1)
        late = []
        submitter = threading.Thread(target=lambda: late.append(batcher.submit(2, timeout=HANG)))
        submitter.start()
        gate.open()  # the worker takes item 1, which makes room for item 2
        submitter.join(HANG)
        assert late[0].result(timeout=HANG) == 4


def test_submit_after_close_raises(no_thread_left_behind):
    batcher = MicroBatcher(doubled, name="done")
    batcher.close()
    with pytest.raises(BatcherClosedError, match="done: closed, it takes no more requests"):
        batcher.submit(1)
    assert batcher.closed


def test_close_finishes_queued_work_and_is_idempotent(no_thread_left_behind):
    gate = Gate(doubled)
    batcher = MicroBatcher(gate, max_batch=2)
    first = gate.hold(batcher, 0)
    queued = [batcher.submit(i) for i in range(1, 6)]
    gate.open()
    batcher.close()
    batcher.close()
    assert [f.result(timeout=0) for f in [first, *queued]] == [0, 2, 4, 6, 8, 10]


def test_close_with_cancel_pending_cancels_queued_futures(no_thread_left_behind):
    gate = Gate(doubled)
    batcher = MicroBatcher(gate)
    running = gate.hold(batcher, 0)
    queued = [batcher.submit(i) for i in range(1, 6)]
    closer = threading.Thread(target=batcher.close, kwargs={"cancel_pending": True})
    closer.start()  # close joins the worker, which is held at the gate: run it aside
    done, _ = wait(queued, timeout=HANG)
    assert len(done) == 5 and all(f.cancelled() for f in queued)
    with pytest.raises(CancelledError):
        queued[0].result(timeout=0)
    gate.open()
    closer.join(HANG)
    assert running.result(timeout=0) == 0  # the batch already running still finishes
    assert batcher.stats().items_processed == 1


def test_a_future_cancelled_by_its_caller_is_skipped(no_thread_left_behind):
    gate = Gate(doubled)
    with MicroBatcher(gate) as batcher:
        gate.hold(batcher, 0)
        keep, drop = batcher.submit(1), batcher.submit(2)
        assert drop.cancel()
        gate.open()
        assert keep.result(timeout=HANG) == 2
    assert gate.batches == [[0], [1]]


def test_close_wakes_blocked_submitters_with_a_typed_error(no_thread_left_behind):
    gate = Gate(doubled)
    batcher = MicroBatcher(gate, max_queue=1, when_full="block")
    gate.hold(batcher, 0)
    batcher.submit(1)
    errors = []

    def blocked_submit():
        try:
            batcher.submit(2)
        except BatcherClosedError as error:
            errors.append(error)

    submitter = threading.Thread(target=blocked_submit)
    submitter.start()
    closer = threading.Thread(target=batcher.close, kwargs={"cancel_pending": True})
    closer.start()
    submitter.join(HANG)
    gate.open()
    closer.join(HANG)
    assert len(errors) == 1


def test_shutdown_under_load_answers_every_accepted_request_and_leaves_no_thread(no_thread_left_behind):
    loaded = threading.Event()
    processed = []

    def doubled_and_counted(items):
        processed.extend(items)
        if len(processed) >= 200:
            loaded.set()
        return doubled(items)

    batcher = MicroBatcher(doubled_and_counted, max_batch=8, max_delay_ms=1.0, max_queue=64)
    accepted, refused = [], []

    def hammer(base):
        for i in range(100_000):  # far more than fits before close: every submitter is still busy then
            try:
                accepted.append((base + i, batcher.submit(base + i)))
            except BatcherClosedError:
                refused.append(base + i)
                return

    submitters = [threading.Thread(target=hammer, args=(k * 1_000_000,)) for k in range(4)]
    for t in submitters:
        t.start()
    assert loaded.wait(HANG)
    batcher.close()
    for t in submitters:
        t.join(HANG)
    assert len(refused) == 4  # each submitter was cut off by close, blocked or not
    assert all(f.result(timeout=0) == 2 * x for x, f in accepted)  # every accepted request was answered
    assert sorted(processed) == sorted(x for x, _ in accepted)  # each exactly once


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"max_batch": 0}, "max_batch must be at least 1, got 0"),
        ({"max_queue": 0}, "max_queue must be at least 1, got 0"),
        ({"max_delay_ms": -1}, "max_delay_ms must be >= 0, got -1"),
        ({"when_full": "drop"}, "when_full must be one of block, reject, got 'drop'"),
    ],
)
def test_unusable_settings_are_refused(settings, message):
    with pytest.raises(BatcherConfigError, match=message):
        MicroBatcher(doubled, **settings)
    assert issubclass(BatcherConfigError, FacestyleError)


# -- the real embedder ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedder(face_onnx):
    embedder = FaceEmbedder.from_onnx(face_onnx, max_batch=8)
    yield embedder
    embedder.close()


@pytest.fixture(scope="module")
def real_chips(astronaut_chip):
    """Twelve distinct real chips: dlib's chip of the astronaut, flipped, rolled and brightened."""
    variants = []
    for flip in (False, True):
        chip = astronaut_chip[:, ::-1] if flip else astronaut_chip
        for shift in (0, 3, -4):
            rolled = np.roll(chip, shift, axis=(0, 1))
            variants += [rolled, np.clip(rolled.astype(np.int16) + 12, 0, 255).astype(np.uint8)]
    return [np.ascontiguousarray(c) for c in variants]


def test_concurrent_embed_async_equals_unbatched_embed(face_onnx, real_chips, no_thread_left_behind):
    threads, requests = 6, 8
    embedder = FaceEmbedder.from_onnx(face_onnx, max_batch=8)
    unbatched = [embedder.embed(chip)[0] for chip in real_chips]  # one chip per call: no batching at all
    results: dict[tuple[int, int], np.ndarray] = {}

    def caller(t):
        for r in range(requests):  # a synchronous caller: submit, wait, submit again
            results[(t, r)] = embedder.embed_async(real_chips[(t * requests + r) % len(real_chips)]).result(HANG)

    before = embedder.async_batcher.stats()
    callers = [threading.Thread(target=caller, args=(t,)) for t in range(threads)]
    for c in callers:
        c.start()
    for c in callers:
        c.join(4 * HANG)
    after = embedder.async_batcher.stats()
    embedder.close()  # its worker thread must go too (checked by no_thread_left_behind)

    assert sorted(results) == [(t, r) for t in range(threads) for r in range(requests)]  # none lost
    assert after.items_processed - before.items_processed == threads * requests  # none duplicated
    for (t, r), vector in results.items():
        np.testing.assert_allclose(vector, unbatched[(t * requests + r) % len(real_chips)], atol=ATOL)
    batches = after.batches_run - before.batches_run
    assert threads * requests / batches > 1, "concurrent callers should have shared batches"
    assert after.largest_batch <= embedder.max_batch


def test_embed_async_rejects_a_bad_chip_at_once(embedder):
    with pytest.raises(BadImageError, match=r"face chip: expected uint8 \(150, 150, 3\) RGB, got uint8\[160, 160, 3\]"):
        embedder.embed_async(np.zeros((160, 160, 3), np.uint8))
    with pytest.raises(BadImageError, match=r"got float32\[150, 150, 3\]"):
        embedder.embed_async(np.zeros((150, 150, 3), np.float32))


def test_a_bad_chip_in_a_real_batch_fails_only_its_own_future(embedder, real_chips, no_thread_left_behind):
    gate = Gate(lambda chips: embedder.embed(np.stack(chips)))  # no check_item: the bad chip reaches the batch
    with MicroBatcher(gate, max_batch=8) as batcher:
        gate.hold(batcher, real_chips[0])
        good_before = batcher.submit(real_chips[1])
        bad = batcher.submit(np.zeros((160, 160, 3), np.uint8))
        good_after = batcher.submit(real_chips[2])
        gate.open()
        with pytest.raises(BadImageError, match=r"expected uint8 \(N, 150, 150, 3\) RGB, got uint8\[1, 160, 160, 3\]"):
            bad.result(timeout=HANG)
        np.testing.assert_allclose(good_before.result(HANG), embedder.embed(real_chips[1])[0], atol=ATOL)
        np.testing.assert_allclose(good_after.result(HANG), embedder.embed(real_chips[2])[0], atol=ATOL)
    assert len(gate.batches[1]) == 3 and batcher.stats().retried_batches == 1


def test_closing_the_embedder_stops_its_batcher(face_onnx, real_chips, no_thread_left_behind):
    embedder = FaceEmbedder.from_onnx(face_onnx)
    futures = [embedder.embed_async(chip) for chip in real_chips[:4]]
    embedder.close()  # the queued chips are embedded first
    assert all(f.result(timeout=0).shape == (128,) for f in futures)
    with pytest.raises(BatcherClosedError, match="face embedder: closed"):
        embedder.embed_async(real_chips[0])
    embedder.close()


def test_a_dropped_embedder_takes_its_worker_thread_with_it(face_onnx, real_chips, no_thread_left_behind):
    embedder = FaceEmbedder.from_onnx(face_onnx)
    before = set(threading.enumerate())
    vector = embedder.embed_async(real_chips[0]).result(HANG)  # outside assert: its rewriting keeps references
    assert vector.shape == (128,)
    [worker] = [t for t in threading.enumerate() if t not in before]
    del embedder  # never closed: the batcher holds it only weakly, so it goes, and closes the batcher
    gc.collect()
    worker.join(HANG)
    assert not worker.is_alive()
