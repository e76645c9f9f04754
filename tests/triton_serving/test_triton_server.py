"""Against a REAL tritonserver (Triton 2.51.0 from PyPI's nvidia-pytriton, Python backend, on loopback):
the repository `facestyle export-triton --platform python` writes is served, the embeddings equal the
in-process runtime's over HTTP and gRPC, the pipeline model gives `facestyle embed`'s boxes and
embeddings, and Triton's dynamic batcher forms batches under concurrent requests.

The server's virtual environment is made once and cached under ~/.cache/facestyle/triton-venv/<key>
(about 1-3 minutes on a fresh machine: pip downloads nvidia-pytriton, 55 MB, numpy<2, onnxruntime).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import FACES, require_shared
from facestyle.errors import FacestyleError

pytest.importorskip("tritonclient.http", reason="tritonclient is not installed: pip install 'facestyle[triton]'")
pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is not installed: pip install 'facestyle[triton]'")

PROTOCOLS = ("http", "grpc")


@pytest.fixture(scope="session")
def analyzer(engines_dir):
    from facestyle.face.analyzer import FaceAnalyzer

    with FaceAnalyzer.from_engines(engines_dir) as a:
        yield a


def client(server, protocol):
    from facestyle.triton import TritonFaces

    return TritonFaces(server.http_url if protocol == "http" else f"grpc://{server.grpc_url}")


def test_server_binds_loopback_and_serves_the_repository(triton_server):
    import tritonclient.http as http

    c = http.InferenceServerClient(triton_server.http_url)
    try:
        ready = {m["name"]: m["state"] for m in c.get_model_repository_index()}
    finally:
        c.close()
    assert ready == {"face-detect": "READY", "face-embed": "READY", "face-pipeline": "READY"}
    assert triton_server.http_url.startswith("127.0.0.1:") and triton_server.grpc_url.startswith("127.0.0.1:")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_embed_on_real_chips_equals_in_process(triton_server, analyzer, astronaut_chip, protocol):
    from facestyle.images import load_image

    chips = [astronaut_chip]
    if FACES.exists():
        image = load_image(FACES / "face_recognition_examples" / "examples" / "two_people.jpg")
        chips += list(analyzer.chips(image, analyzer.detector.detect(image).boxes)[1])
    chips = np.stack(chips + [np.ascontiguousarray(astronaut_chip[:, ::-1])])  # and a mirrored chip
    expected = analyzer.embedder.embed(chips)
    with client(triton_server, protocol) as remote:
        got = remote.embed(chips)
        assert remote.threshold == 0.6 and remote.embedder.identity == analyzer.embedder.identity
    assert got.shape == (len(chips), 128) and got.dtype == np.float32
    assert float(np.abs(got - expected).max()) <= 1e-5
    assert float(np.linalg.norm(got[0] - got[-1])) > 0.01  # different chips, different vectors: not a constant


def _photos():
    from facestyle.export.sample_inputs import skimage_data_dir

    photos = [skimage_data_dir() / "astronaut.png"]
    if FACES.exists():
        examples = FACES / "face_recognition_examples" / "examples"
        photos += [examples / "two_people.jpg", examples / "knn_examples" / "test" / "obama_and_biden.jpg",
                   examples / "biden.jpg"]
    return photos


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pipeline_on_real_photos_equals_facestyle_embed(triton_server, engines_dir, capsys, protocol):
    from facestyle.cli import main

    photos = _photos() if protocol == "http" else _photos()[:2]  # gRPC: the same path, fewer photos (time)
    assert main(["embed", "--json", "--engines", str(engines_dir), *map(str, photos)]) == 0
    expected = json.loads(capsys.readouterr().out)
    with client(triton_server, protocol) as remote:
        found = remote.faces_batch(photos)
    assert sum(len(e["faces"]) for e in expected) >= len(photos)  # every photo has a face; some have two
    for want, got in zip(expected, found):
        assert [f["box"] for f in want["faces"]] == [[int(v) for v in f.box] for f in got], want["file"]
        assert [f["landmarks"] for f in want["faces"]] == [f.landmarks.tolist() for f in got]
        for w, g in zip(want["faces"], got):
            assert abs(w["score"] - g.score) <= 1e-5
            assert float(np.abs(np.asarray(w["embedding"], np.float32) - g.embedding).max()) <= 1e-5


def test_verify_and_identify_through_triton_match_in_process(triton_server, analyzer, tmp_path):
    from facestyle.face.gallery import Gallery, enroll_photos, identify_photo

    require_shared(FACES)
    examples = FACES / "face_recognition_examples" / "examples"
    gallery = Gallery.open(tmp_path / "g.db", analyzer.embedder.identity)
    enroll_photos(gallery, analyzer, "obama", [examples / "obama.jpg"])
    enroll_photos(gallery, analyzer, "biden", [examples / "biden.jpg"])
    with client(triton_server, "grpc") as remote:
        same = remote.verify(examples / "obama.jpg", examples / "obama2.jpg")
        other = remote.verify(examples / "obama.jpg", examples / "biden.jpg")
        named = remote.identify(gallery, examples / "knn_examples" / "test" / "obama_and_biden.jpg")
    local = analyzer.verify(examples / "obama.jpg", examples / "obama2.jpg")
    assert same.same and not other.same and abs(same.distance - local.distance) <= 1e-5
    expected = identify_photo(gallery, analyzer, examples / "knn_examples" / "test" / "obama_and_biden.jpg")
    assert [f.identity for f in named.faces] == [f.identity for f in expected.faces]
    assert [f.box for f in named.faces] == [f.box for f in expected.faces]
    assert {"biden", "obama"} <= {f.identity for f in named.faces}  # and a third, smaller face: "unknown"
    assert list(named.timings) == ["pipeline", "search"] and named.timings["pipeline"] > 0
    assert named.threshold == 0.6 and named.threshold_source.startswith("triton face-embed: ")


def test_a_bad_image_fails_only_its_own_request(triton_server, astronaut_chip):
    with client(triton_server, "http") as remote:
        with pytest.raises(FacestyleError, match=r"image: .*face-pipeline: .*not a readable image"):
            remote.faces(b"these bytes are not an image")
        with pytest.raises(FacestyleError, match=r"face chips: expected uint8 \(N, 150, 150, 3\) RGB, got uint8\[1, 120, 150, 3\]"):
            remote.embed(astronaut_chip[None, :120])
        assert len(remote.faces(astronaut_chip)) in (0, 1)  # the server still answers


def test_concurrent_requests_are_batched_by_triton(triton_server, analyzer, astronaut_chip):
    chips = np.stack([astronaut_chip, np.ascontiguousarray(astronaut_chip[:, ::-1])])
    expected = analyzer.embedder.embed(chips)
    with client(triton_server, "grpc") as remote:
        before = remote.batch_sizes()
        with ThreadPoolExecutor(16) as pool:  # 64 single-chip requests from 16 threads, bounded
            results = list(pool.map(lambda i: (i % 2, remote.embed(chips[i % 2])[0]), range(64)))
        after = remote.batch_sizes()
    for which, vector in results:
        assert float(np.abs(vector - expected[which]).max()) <= 1e-5
    grown = {size: after.get(size, 0) - before.get(size, 0) for size in after}
    assert sum(size * count for size, count in grown.items()) == 64  # every request ran once
    assert max(size for size, count in grown.items() if count) > 1, grown


def test_bench_cases_time_in_process_beside_triton(triton_server, engines_dir):
    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.triton.bench import markdown, run_triton_bench

    rows = run_triton_bench({"http": triton_server.http_url, "grpc": triton_server.grpc_url}, engines_dir,
                            skimage_data_dir() / "astronaut.png", repeats=2, warmup=1, batches=(1, 4))
    assert [(r["task"], r["where"], r["batch"]) for r in rows] == [
        (task, where, batch) for where in ("in-process", "triton-http", "triton-grpc")
        for task, batch in (("embed", 1), ("embed", 4), ("e2e-faces", 1))]
    assert all(r["repeats"] == 2 and 0 < r["p50_ms"] <= r["p99_ms"] for r in rows)
    assert markdown(rows).count("\n") == len(rows) + 2
