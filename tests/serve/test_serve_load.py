"""Bounded concurrent load on a real server: every answer right, batches really formed (from /metrics)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from serve_helpers import *  # noqa: F403 (fixtures)
from serve_helpers import EXAMPLES, Server, httpx

CLIENTS, REQUESTS = 64, 10
TIME_BOUND_S = 240  # this 2-core machine, shared: far above the ~10-30 s it takes


@pytest.fixture(scope="module")
def chips(analyzer, astronaut_bytes):
    """Real aligned chips (ours equal dlib's) with their embeddings from the runtime, as PNG bytes."""
    from facestyle.images import encode_image, load_image

    photos = [load_image(astronaut_bytes)]
    if EXAMPLES.exists():
        photos += [load_image(EXAMPLES / n) for n in ("obama.jpg", "biden.jpg", "two_people.jpg")]
    out = []
    for pixels in photos:
        faces = analyzer.faces(pixels)
        _, made = analyzer.chips(pixels, np.stack([f.box for f in faces]))
        out += list(made)
    out += [np.ascontiguousarray(c[:, ::-1]) for c in out]  # mirrored faces: more distinct real inputs
    vectors = analyzer.embedder.embed(np.stack(out))
    return [(encode_image(c), v) for c, v in zip(out, vectors)]


def test_64_clients_x_10_requests_share_batches(serve_engines, chips):
    from facestyle.serve.metrics import parse_text

    s = Server(serve_engines, "--max-batch", "32")
    try:
        wrong, failed, latencies = [], [], []
        lock = threading.Lock()

        def client(i: int):
            with httpx.Client(base_url=s.url, timeout=120) as c:
                for j in range(REQUESTS):
                    data, expected = chips[(i + j) % len(chips)]
                    start = time.perf_counter()
                    r = c.post("/v1/embed?aligned=true", files=[("images", (f"c{i}-{j}.png", data, "image/png"))])
                    with lock:
                        latencies.append(time.perf_counter() - start)
                        if r.status_code != 200:
                            failed.append(r.status_code)
                        elif np.abs(np.array(r.json()["images"][0]["embedding"]) - expected).max() >= 1e-5:
                            wrong.append((i, j))

        start = time.monotonic()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIME_BOUND_S)
        elapsed = time.monotonic() - start
        assert not any(t.is_alive() for t in threads), f"load not done within {TIME_BOUND_S} s"
        assert failed == [] and wrong == [] and len(latencies) == CLIENTS * REQUESTS
        m = parse_text(httpx.get(s.url + "/metrics").text)
        batches, items = m['facestyle_batch_size_count{batcher="embed"}'], m['facestyle_batch_size_sum{batcher="embed"}']
        assert items == CLIENTS * REQUESTS
        assert items / batches > 2, f"mean batch {items / batches:.2f}: batches did not form"
        assert m['facestyle_batch_size_bucket{batcher="embed",le="1"}'] < batches  # some batches hold several
        print(f"{CLIENTS}x{REQUESTS} in {elapsed:.1f} s, mean batch {items / batches:.1f}, "
              f"p50 {1000 * np.median(latencies):.0f} ms")
    finally:
        assert s.stop() == 0
