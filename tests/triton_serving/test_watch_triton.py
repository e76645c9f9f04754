"""``facestyle watch --triton URL`` against a REAL tritonserver (PyPI's nvidia-pytriton, the server the other Triton
tests start): the detector's and the embedder's networks run on the server, tracking, naming and events in the
watch, and the JSON lines equal the in-process watch's on the same video and gallery. A server that cannot be
reached is one error line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from facestyle.cli import main

cv2 = pytest.importorskip("cv2", reason="OpenCV (the video extra) is not installed: pip install 'facestyle[video]'")

DISTANCE_TOLERANCE = 1e-4  # the served embeddings equal the in-process ones to 1e-5 an element


@pytest.fixture(scope="module")
def astronaut_photo():
    from facestyle.export.sample_inputs import skimage_data_dir

    return skimage_data_dir() / "astronaut.png"


@pytest.fixture(scope="module")
def astronaut_video(astronaut_photo, tmp_path_factory):
    """2 s (24 frames, 12 fps, 320x240) of a window panning 4 px a frame across scikit-image's astronaut."""
    from facestyle.images import load_image

    photo = load_image(astronaut_photo)
    path = tmp_path_factory.mktemp("video") / "astronaut.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (320, 240))
    for step in range(24):
        window = photo[20:260, 100 + 4 * step : 420 + 4 * step]
        writer.write(cv2.cvtColor(np.ascontiguousarray(window), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def gallery(engines_dir, astronaut_photo, tmp_path_factory):
    path = tmp_path_factory.mktemp("gallery") / "people.db"
    assert main(["enroll", "--gallery", str(path), "--engines", str(engines_dir), "eileen", str(astronaut_photo)]) == 0
    return path


def watch_lines(video, gallery, engines_dir, out, *more) -> list[dict]:
    assert main(["watch", "--source", str(video), "--gallery", str(gallery), "--engines", str(engines_dir),
                 "--json-lines", str(out), "--no-keep-unknowns", "--quiet", *more]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def inference_counts(server) -> dict[str, int]:
    from facestyle.triton import TritonFaces

    with TritonFaces(server.http_url) as faces:
        return {m: faces.statistics(m)["model_stats"][0]["inference_count"]
                for m in ("face-detect", "face-embed", "face-pipeline")}


def without_distances(line: dict) -> dict:
    """A line with its faces' distances left out (compared with a tolerance) and the threshold's source, which
    names where the model was read (a manifest file, or the served model)."""
    faces = [{k: v for k, v in f.items() if k != "distance"} for f in line.get("faces", [])]
    return {**{k: v for k, v in line.items() if k != "threshold_source"}, **({"faces": faces} if faces else {})}


def test_watch_on_triton_names_as_the_in_process_watch(triton_server, engines_dir, astronaut_video, gallery,  # noqa: F811
                                                       tmp_path):
    local = watch_lines(astronaut_video, gallery, engines_dir, tmp_path / "local.jsonl")
    before = inference_counts(triton_server)
    served = watch_lines(astronaut_video, gallery, engines_dir, tmp_path / "triton.jsonl",
                         "--triton", triton_server.http_url)
    after = inference_counts(triton_server)

    events = [(e["event"], e["track"], e["identity"]) for e in served if "event" in e]
    assert ("identified", 1, "eileen") in events
    assert {e["track"] for e in served if "event" in e and e["track"] is not None} == {1}
    assert [without_distances(line) for line in served] == [without_distances(line) for line in local]
    distances = [[f["distance"] for line in lines for f in line.get("faces", [])] for lines in (local, served)]
    np.testing.assert_allclose(*distances, atol=DISTANCE_TOLERANCE)
    frames = sum("faces" in line for line in served)
    assert frames == 24
    # every frame detected on the server (full and region passes), the track's face embedded there; never the pipeline
    assert after["face-detect"] - before["face-detect"] >= frames
    assert after["face-embed"] - before["face-embed"] >= 1
    assert after["face-pipeline"] == before["face-pipeline"]


def test_an_unreachable_server_is_one_error_line(engines_dir, astronaut_video, gallery, capsys):
    from facestyle.triton.local import free_port

    url = f"127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["watch", "--source", str(astronaut_video), "--gallery", str(gallery), "--engines", str(engines_dir),
                 "--quiet", "--triton", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"facestyle watch: error: triton {url} (http): cannot connect (Connection refused)"]


def test_a_trained_model_with_triton_is_refused(engines_dir, astronaut_video, gallery, tmp_path, capsys):
    from facestyle.triton.local import free_port

    assert main(["watch", "--source", str(astronaut_video), "--gallery", str(gallery), "--engines", str(engines_dir),
                 "--quiet", "--model", str(tmp_path), "--triton", f"127.0.0.1:{free_port()}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"facestyle watch: error: --model {tmp_path} with --triton: the server's face-embed embeds")
