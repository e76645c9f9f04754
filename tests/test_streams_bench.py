"""benchmarks/streams.py: its scenes' truth holds the faces drawn, its scoring counts what it says, and its quick
run ends with every figure in range."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, SHARED_DATA, require_shared

pytest.importorskip("cv2", reason="OpenCV (the video extra) is not installed: pip install 'facestyle[video]'")
motmetrics = pytest.importorskip("motmetrics", reason="py-motmetrics (the bench extra) is not installed")
sys.path.insert(0, str(REPO / "benchmarks"))
import streams  # noqa: E402 (benchmarks/streams.py, found through the line above)

CONFIG_NAMES = [name for name, _ in streams.CONFIGS]


@pytest.fixture(scope="module")
def plan():
    require_shared(SHARED_DATA / "lfw-view1" / "lfw-deepfunneled")
    require_shared(SHARED_DATA / "content" / "bsds500")
    return streams.plan_scene(seed=1, people=3, strangers=1, seconds=9.0)


@pytest.fixture(scope="module")
def analyzer(engines_dir):
    from facestyle.face.analyzer import FaceAnalyzer

    return FaceAnalyzer.from_engines(engines_dir)


def _without(plan: dict, pid: int) -> dict:
    return {**plan, "walks": [w for w in plan["walks"] if w.pid != pid]}


def test_the_truth_boxes_hold_the_pasted_faces(plan, analyzer):
    from facestyle.streams.tracker import iou_matrix

    renderer = streams.SceneRenderer(plan)
    checked = 0
    for index in range(0, plan["frames"], 9):
        frame, truth = renderer.frame(index)
        boxes = analyzer.detector.detect(frame, upsample=0).boxes
        for face in truth:
            width = face["box"][2] - face["box"][0] + 1
            if face["visible"] < 0.99 or width < 80:  # whole faces the detector's 80 px window can see
                continue
            assert len(boxes) and iou_matrix([face["box"]], boxes).max() >= 0.5, (index, face)
            checked += 1
    assert checked >= 10


def test_faces_grow_and_turn_on_their_walk(plan):
    renderer = streams.SceneRenderer(plan)
    walk = plan["walks"][0]
    first, last = walk.at(walk.start), walk.at(walk.end - 1)
    assert first[2] < 65 and last[2] > 125  # ~50 px far away, ~160 px near
    assert walk.start < walk.turn < walk.end and walk.photos[0] != walk.photos[1]
    assert walk.photos[0] not in plan["enrolled"].values()  # enrolled from a photo the scene never shows
    width = [f for f in renderer.frame(walk.end - 1)[1] if f["id"] == walk.pid][0]["box"]
    assert width[2] - width[0] > 120


def test_an_occlusion_hides_the_person_behind(plan):
    """The last walker crosses in front of the first: for a few frames the first's face is gone from the
    picture, so that removing them changes nothing there, while removing the walker in front shows them."""
    renderer, behind, front = streams.SceneRenderer(plan), plan["walks"][0], plan["walks"][-1]
    hidden = [i for i in range(plan["frames"])
              if any(f["id"] == behind.pid and f["visible"] == 0 for f in renderer.frame(i)[1])]
    assert len(hidden) >= 3
    index = hidden[len(hidden) // 2]
    frame, truth = renderer.frame(index)
    left, top, right, bottom = [f for f in truth if f["id"] == behind.pid][0]["box"]
    region = (slice(top, bottom + 1), slice(left, right + 1))

    def change(other):
        """The fraction of the hidden face's box whose pixels move by more than 8 levels."""
        return np.mean(np.abs(frame[region].astype(int) - other[region].astype(int)).max(axis=2) > 8)

    assert change(streams.SceneRenderer(_without(plan, behind.pid)).frame(index)[0]) < 0.15  # the soft edge at most
    assert change(streams.SceneRenderer(_without(plan, front.pid)).frame(index)[0]) > 0.5


def _truth(identities: list[str], frames: int = 6) -> dict:
    people = [{"id": i + 1, "identity": name} for i, name in enumerate(identities)]
    faces = [[{"id": p["id"], "identity": p["identity"], "box": [100 * p["id"], 50, 100 * p["id"] + 60, 110],
               "visible": 1.0} for p in people] for _ in range(frames)]
    return {"people": people, "faces": faces}


def _hyps(truth: dict, names: dict) -> dict:
    """A tracker that finds every face, track id = 10 + truth id, named as ``names`` says (from frame 2 on)."""
    return {i: [(10 + f["id"], f["box"], names[f["id"]] if i >= 2 else "unknown") for f in faces]
            for i, faces in enumerate(truth["faces"])}


def _scored(truth, hyps):
    accumulator = motmetrics.MOTAccumulator(auto_id=False)
    scene = streams.score_scene(truth, hyps, accumulator)
    return streams.summarise("x", [scene], [accumulator], [{"hyps": hyps, "wall_s": 1.0, "cpu_s": 0.5}])


def test_a_perfect_tracker_scores_full_marks():
    truth = _truth(["Ann", streams.STRANGER])
    row = _scored(truth, _hyps(truth, {1: "Ann", 2: "unknown"}))
    assert (row["idf1"], row["mota"], row["id_switches"]) == (1.0, 1.0, 0)
    assert row["identity_accuracy"] == pytest.approx(10 / 12, abs=1e-4)  # Ann is "unknown" in frames 0 and 1
    assert row["wrong_name_rate"] == 0.0 and row["median_frames_to_name"] == 2.0


def test_a_stranger_given_a_name_is_a_wrong_name():
    truth = _truth(["Ann", streams.STRANGER])
    row = _scored(truth, _hyps(truth, {1: "Ann", 2: "Bob"}))
    assert row["wrong_name_rate"] == 0.5  # 4 frames of "Bob" among 8 named face-frames
    assert row["identity_accuracy"] == pytest.approx(6 / 12, abs=1e-4)


def test_a_face_hidden_behind_another_is_not_scored():
    truth = _truth(["Ann"])
    truth["faces"][3][0]["visible"] = 0.0
    hyps = _hyps(truth, {1: "Ann"})
    hyps[3] = []  # the tracker loses the hidden face: not a miss
    row = _scored(truth, hyps)
    assert row["face_frames"] == 5 and row["mota"] == 1.0


def test_the_quick_run_writes_every_figure(engines_dir, tmp_path):
    require_shared(SHARED_DATA / "lfw-view1" / "lfw-deepfunneled")
    out, picture = tmp_path / "streams.json", tmp_path / "streams.png"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "streams.py"), "--quick", "--engines",
                          str(engines_dir), "--work", str(tmp_path / "work"), "--json", str(out), "--plot", str(picture)],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["machine"] and result["gallery_people"] >= 200
    assert [c["config"] for c in result["configs"]] == CONFIG_NAMES
    for row in result["configs"]:
        for key in ("idf1", "identity_accuracy", "wrong_name_rate"):
            assert 0.0 <= row[key] <= 1.0, (row["config"], key)
        assert row["mota"] <= 1.0 and row["id_switches"] >= 0
        assert row["frames"] == 45 and row["fps"] > 0 and 0 < row["cpu_s_per_frame"] < 60
        assert row["realtime_streams"] in (0, 1) and row["realtime_trials"]
    assert {g["config"] for g in result["goals"]} <= set(CONFIG_NAMES)
    assert all(isinstance(g["pass"], bool) for g in result["goals"])
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
