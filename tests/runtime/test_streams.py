"""Video and camera streams on real photos: faces watched and named per frame, videos stylised without flicker.

The videos are written here with OpenCV from scikit-image's public-domain photos: a slow pan over the
astronaut (her face in every frame), a still scene with slight sensor noise, and a pan for motion.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CountingEmbedStep
from facestyle.errors import BadInputError, MissingDependencyError
from facestyle.streams import Event, FrameResult, Sources, watch as watch_streams
from facestyle.style.video import TemporalSmoother, flicker, stylize_video
from facestyle.video import open_source

cv2 = pytest.importorskip("cv2", reason="OpenCV (the video extra) is not installed: pip install 'facestyle[video]'")

FPS = 12.0


def write_video(path, frames, fps=FPS):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def read_video(path) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


@pytest.fixture(scope="module")
def astronaut_file():
    from facestyle.export.sample_inputs import skimage_data_dir

    return skimage_data_dir() / "astronaut.png"


@pytest.fixture(scope="module")
def astronaut_pan(astronaut_file, tmp_path_factory):
    """12 frames of 320x240 panning 4 px a frame across the astronaut; her face (~80 px) is in all of them."""
    from facestyle.images import load_image

    photo = load_image(astronaut_file)
    frames = [photo[20:260, 100 + 4 * i : 420 + 4 * i] for i in range(12)]
    return write_video(tmp_path_factory.mktemp("video") / "astronaut.mp4", frames)


@pytest.fixture(scope="module")
def analyzer(engines_dir):
    from facestyle.face.analyzer import FaceAnalyzer

    return FaceAnalyzer.from_engines(engines_dir)


@pytest.fixture(scope="module")
def stylizer(style_engines):
    from facestyle.style.stylizer import Stylizer

    root, name = style_engines
    return Stylizer.from_engines(name, root)


def still_scene(count=12, noise=2.0):
    """A real photo (chelsea the cat, 128x96) that does not move, with fresh sensor noise in every frame."""
    from facestyle.export.sample_inputs import natural_images

    photo = natural_images([(96, 128)] * 3)[2].astype(np.float32)
    rng = np.random.default_rng(0)
    return [np.clip(photo + rng.normal(0, noise, photo.shape), 0, 255).astype(np.uint8) for _ in range(count)]


def moving_scene(count=12, step=6):
    """A 128x96 window panning ``step`` px a frame across the astronaut photo."""
    from facestyle.export.sample_inputs import natural_images

    photo = natural_images([(240, 320)] * 3)[1]
    return [np.ascontiguousarray(photo[60:156, 40 + step * i : 168 + step * i]) for i in range(count)]


# -- reading sources ----------------------------------------------------------------------------
def test_a_video_file_gives_rgb_frames_with_index_and_time(astronaut_pan, astronaut_file):
    with open_source(str(astronaut_pan)) as source:
        assert (source.width, source.height, source.fps, source.frame_count) == (320, 240, FPS, 12)
        frames = list(source)
    assert [f.index for f in frames] == list(range(12))
    assert frames[3].time_s == pytest.approx(3 / FPS)
    first = frames[0].pixels
    assert first.shape == (240, 320, 3) and first.dtype == np.uint8
    # RGB, not OpenCV's BGR: the orange suit (bottom left) is red-heavy as in the photo
    suit = first[200:, :40].reshape(-1, 3).mean(0)
    assert suit[0] > suit[2] + 40


@pytest.mark.parametrize("source,message", [
    ("missing.mp4", r"missing.mp4: no such video file"),
    ("not_a_video.mp4", r"not_a_video.mp4: cannot be opened \(not a video"),
    (97, r"camera 97: cannot be opened"),
    ("97", r"camera 97: cannot be opened"),
])
def test_a_source_that_cannot_be_opened_is_named(tmp_path, monkeypatch, source, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not_a_video.mp4").write_text("hello, not a video")
    with pytest.raises(BadInputError, match=message):
        open_source(source)


def test_without_opencv_the_extra_is_named(monkeypatch, astronaut_pan):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'facestyle\[video\]'"):
        open_source(astronaut_pan)


def test_the_runtime_imports_streams_without_opencv():
    script = ("import sys, facestyle.video, facestyle.streams.annotate, facestyle.style.video, facestyle.streams; "
              "assert 'cv2' not in sys.modules and 'torch' not in sys.modules and 'scipy' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# -- watching for faces -------------------------------------------------------------------------
def test_watch_names_the_enrolled_astronaut_in_every_frame(engines_dir, analyzer, astronaut_pan, astronaut_file,
                                                           tmp_path, capsys):
    from facestyle.cli import main
    from facestyle.face.gallery import Gallery, enroll_photos

    gallery = Gallery.open(tmp_path / "people.db", analyzer.embedder.identity)
    assert enroll_photos(gallery, analyzer, "eileen", [astronaut_file])[0].status == "enrolled"  # the still photo
    gallery.close()
    lines, out = tmp_path / "lines.jsonl", tmp_path / "annotated.mp4"
    assert main(["watch", "--source", str(astronaut_pan), "--gallery", str(tmp_path / "people.db"), "--out", str(out),
                 "--json-lines", str(lines), "--engines", str(engines_dir)]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("facestyle watch: threshold")]
    assert len(said) == 1 and said[0].startswith("facestyle watch: threshold 0.6 (manifest ")  # once, with its source
    assert "1 enrolled person is too few to calibrate a 1:N threshold" in said[0]
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    frames = [r for r in records if "frame" in r]
    assert [r["frame"] for r in frames] == list(range(12))
    for r in frames:
        (face,) = r["faces"]
        assert face["identity"] == "eileen" and face["distance"] < 0.3  # same photo, panned and re-encoded
        assert face["track"] == 1 and face["quality"] > 0.9
    # the box follows the pan: 4 px a frame to the left in the window
    lefts = [r["faces"][0]["box"][0] for r in frames]
    assert lefts[0] - lefts[-1] == pytest.approx(44, abs=6)
    assert not list(tmp_path.glob(".*partial*"))  # the temporary file was renamed, not left behind
    original, annotated = read_video(astronaut_pan), read_video(out)
    assert len(annotated) == 12 and annotated[0].shape == original[0].shape
    left, top, right, bottom = frames[5]["faces"][0]["box"]
    change = np.abs(annotated[5].astype(np.float32) - original[5]).mean(axis=2)
    box_edge = change[top + 5 : bottom - 5, left]  # the box's left side, away from the label
    inside = change[top + 10 : bottom - 10, left + 10 : right - 10]
    print(f"mean change on the box line {box_edge.mean():.1f}, inside the face {inside.mean():.1f}")
    assert box_edge.mean() > 40 and inside.mean() < 8


def test_watch_without_a_gallery_just_boxes_faces_and_can_skip_frames(analyzer, astronaut_pan):
    stream_watch = watch_streams(str(astronaut_pan), analyzer, every=3, max_frames=9)
    frames, _ = split(list(stream_watch))
    (source,) = stream_watch.summary()["sources"]
    assert (source["frames"], source["analysed"], source["faces"]) == (9, 3, 3)
    assert stream_watch.summary()["embedded"] == 0 and "threshold" not in stream_watch.summary()
    assert [r["frame"] for r in frames] == [0, 3, 6]
    for face in (f for r in frames for f in r["faces"]):
        assert face["identity"] is None and face["distance"] is None and face["quality"] > 0.9  # measured, not named


def test_watch_refuses_bad_settings_and_sources(engines_dir, analyzer, astronaut_pan, tmp_path, capsys):
    from facestyle.cli import main

    with pytest.raises(BadInputError, match=r"every 0: expected a whole number of at least 1"):
        watch_streams(astronaut_pan, analyzer, every=0)
    with pytest.raises(BadInputError, match=r"naming 'photo': expected one of track, frame"):
        watch_streams(astronaut_pan, analyzer, naming="photo")
    with pytest.raises(BadInputError, match=r"min_quality 1.5: expected a quality from 0 to 1"):
        watch_streams(astronaut_pan, analyzer, min_quality=1.5)
    out = tmp_path / "out"
    for source, target, message in ((tmp_path / "nowhere.mp4", out / "out.mp4", "nowhere.mp4: no such file"),
                                    (astronaut_pan, out / "out.avi-nope", "out.avi-nope: cannot write a mp4v video")):
        out.mkdir(exist_ok=True)
        assert main(["watch", "--source", str(source), "--out", str(target), "--engines", str(engines_dir)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("facestyle watch: error: ") and message in err and err.count("\n") == 1
        assert list(out.iterdir()) == []


# -- flicker and smoothing ----------------------------------------------------------------------
def test_flicker_is_the_mean_frame_to_frame_change():
    frames = [np.full((2, 2, 3), v, np.uint8) for v in (10, 14, 10, 10)]
    assert flicker(frames) == pytest.approx((4 + 4 + 0) / 3)
    with pytest.raises(BadInputError, match="at least 2 frames"):
        flicker(frames[:1])


def test_smoothing_steadies_a_still_scene(stylizer, tmp_path):
    source = write_video(tmp_path / "still.mp4", still_scene())
    raw = stylize_video(source, tmp_path / "raw.mp4", stylizer, smooth=0.0)
    smoothed = stylize_video(source, tmp_path / "smoothed.mp4", stylizer, smooth=0.8)
    print(f"still scene: input flicker {raw['input_flicker']}, stylised {raw['flicker']}, "
          f"with smooth 0.8 {smoothed['flicker']} ({raw['flicker'] / smoothed['flicker']:.1f}x less)")
    assert smoothed["flicker"] < raw["flicker"] / 2  # measured: 1.46 -> 0.45, 3.2x less
    for result, file in ((raw, "raw.mp4"), (smoothed, "smoothed.mp4")):
        assert (result["frames"], result["fps"], result["size"]) == (12, FPS, [128, 96])
        frames = read_video(tmp_path / file)
        assert len(frames) == 12 and frames[0].shape == (96, 128, 3)


def test_smoothing_does_not_drag_moving_content(stylizer):
    frames = moving_scene()
    stylised = [stylizer.stylize(f) for f in frames]

    def lag(motion_scale: float) -> tuple[float, float]:
        """Mean distance of the smoothed output from the fresh stylised frames, and the output's flicker."""
        smoother = TemporalSmoother(0.8, motion_scale)
        out = [smoother(f, s) for f, s in zip(frames, stylised)]
        return float(np.mean([np.abs(o.astype(np.float32) - s).mean() for o, s in zip(out[1:], stylised[1:])])), flicker(out)

    (aware, aware_flicker), (plain, plain_flicker) = lag(6.0), lag(float("inf"))  # inf: a plain moving average
    print(f"moving: lag {aware:.1f} motion-aware, {plain:.1f} plain average; flicker {aware_flicker:.1f} / "
          f"{plain_flicker:.1f} of {flicker(stylised):.1f} unsmoothed")
    assert aware < 8 and aware < plain / 3  # measured: 4.7 and 27.0
    assert aware_flicker > 0.6 * flicker(stylised)  # the motion stays (measured 0.82; a plain average keeps 0.24)


def test_max_side_and_max_frames_on_a_source_already_open(stylizer, tmp_path):
    source = open_source(write_video(tmp_path / "moving.mp4", moving_scene()))
    assert source.frame_count == 12  # what a caller opens it first for: sizing a progress bar
    result = stylize_video(source, tmp_path / "small.mp4", stylizer, smooth=0.5, max_side=64, max_frames=5)
    assert (result["frames"], result["size"]) == (5, [64, 48])
    assert len(read_video(tmp_path / "small.mp4")) == 5


def test_stylize_video_refuses_bad_smoothing_and_leaves_nothing_on_failure(stylizer, tmp_path):
    source = write_video(tmp_path / "still.mp4", still_scene(count=4))
    for smooth in (1.0, -0.1):
        with pytest.raises(BadInputError, match=rf"smooth {smooth}: expected a value from 0 \(no smoothing\) up to, not incl"):
            stylize_video(source, tmp_path / "out.mp4", stylizer, smooth=smooth)
    with pytest.raises(BadInputError, match=r"gone.mp4: no such video file"):
        stylize_video(tmp_path / "gone.mp4", tmp_path / "out.mp4", stylizer)
    with pytest.raises(BadInputError, match="would overwrite the video being read"):
        stylize_video(source, source, stylizer)

    class FailsOnThirdFrame:
        calls = 0

        def stylize(self, image, strength=1.0):
            self.calls += 1
            if self.calls == 3:
                raise BadInputError("frame 3: simulated failure")
            return stylizer.stylize(image, strength)

    with pytest.raises(BadInputError, match="simulated failure"):
        stylize_video(source, tmp_path / "out.mp4", FailsOnThirdFrame())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["still.mp4"]  # no output, no partial file


# -- tracked streams: several sources, ids, names per track (facestyle.streams) ----------------------------------------
FRAME_KEYS, FACE_KEYS, EVENT_KEYS = {"source", "frame", "time_s", "faces"}, {"track", "box", "identity", "distance",
                                                                              "quality"}, \
    {"event", "source", "track", "identity", "time_s"}


@pytest.fixture(scope="module")
def eileen_gallery(analyzer, astronaut_file, tmp_path_factory):
    from facestyle.face.gallery import Gallery, enroll_photos

    gallery = Gallery.open(tmp_path_factory.mktemp("gallery") / "people.db", analyzer.embedder.identity)
    assert enroll_photos(gallery, analyzer, "eileen", [astronaut_file])[0].status == "enrolled"
    return gallery


def two_faces_clip(path, count, step=16):
    """Colin Powell still, Tony Blair passing in front of him ``step`` px a frame (real LFW faces on a photo)."""
    from stream_scenes import face_patch, scene, write_video

    still, moving = face_patch("Colin_Powell", 38), face_patch("Tony_Blair", 6)
    return write_video(path, scene([(still, lambda i: (240, 90)), (moving, lambda i: (20 + step * i, 100))], count))


def split(items):
    frames = [i.to_json() for i in items if isinstance(i, FrameResult)]
    return frames, [i.to_json() for i in items if isinstance(i, Event)]


def test_a_track_keeps_its_name_through_frames_where_it_is_not_embedded(analyzer, astronaut_pan, eileen_gallery):
    stream_watch = watch_streams([str(astronaut_pan)], analyzer, eileen_gallery, reembed_every=100)
    frames, events = split(list(stream_watch))
    assert [f["frame"] for f in frames] == list(range(12))
    faces = [face for f in frames for face in f["faces"]]
    assert len(faces) == 12 and {face["track"] for face in faces} == {1}
    assert all(face["identity"] == "eileen" and face["distance"] < 0.3 for face in faces)
    # Embedded once, when the track started: a face of high quality is evidence enough, and none is better later.
    assert all(face["quality"] > 0.95 for face in faces)
    assert stream_watch.summary()["embedded"] == 1
    assert [(e["event"], e["track"], e["identity"]) for e in events] == [
        ("track_start", 1, "eileen"), ("identified", 1, "eileen"), ("track_end", 1, "eileen"), ("source_end", None, None)]
    assert events[1]["threshold_source"] == stream_watch.summary()["threshold_source"]


def test_reembedding_every_n_frames_keeps_the_name(analyzer, astronaut_pan, eileen_gallery):
    stream_watch = watch_streams(astronaut_pan, analyzer, eileen_gallery, reembed_every=4)
    frames, _ = split(list(stream_watch))
    assert stream_watch.summary()["embedded"] == 3  # frames 0 (new), then 4 and 8 (4 frames on)
    assert {face["identity"] for f in frames for face in f["faces"]} == {"eileen"}


def test_two_files_at_once_one_ending_early_does_not_stop_the_other(analyzer, astronaut_pan, eileen_gallery, tmp_path):
    short = two_faces_clip(tmp_path / "two.mp4", 5)
    items = [item.to_json() for item in watch_streams([str(short), str(astronaut_pan)], analyzer, eileen_gallery)]
    lines = {source: [i for i in items if i["source"] == source and "frame" in i] for source in (str(short), str(astronaut_pan))}
    assert [line["frame"] for line in lines[str(short)]] == list(range(5))
    assert [line["frame"] for line in lines[str(astronaut_pan)]] == list(range(12))
    assert all(len(line["faces"]) == 2 for line in lines[str(short)])
    assert {face["identity"] for line in lines[str(short)] for face in line["faces"]} == {"unknown"}
    short_end = items.index({"event": "source_end", "source": str(short), "track": None, "identity": None,
                             "time_s": pytest.approx(4 / FPS)})
    assert items.index(lines[str(astronaut_pan)][-1]) > short_end  # the long file went on after the short one ended
    ids = {source: {face["track"] for line in found for face in line["faces"]} for source, found in lines.items()}
    assert len(ids[str(short)]) == 2 and len(ids[str(astronaut_pan)]) == 1 and not ids[str(short)] & ids[str(astronaut_pan)]


def test_the_faces_of_all_sources_in_a_tick_are_embedded_in_one_call(analyzer, astronaut_pan, eileen_gallery, tmp_path):
    counting = CountingEmbedStep(analyzer.embedder)
    short = two_faces_clip(tmp_path / "two.mp4", 3)
    stream_watch = watch_streams([str(short), str(astronaut_pan)], analyzer.with_embedder(counting), eileen_gallery,
                                 max_frames=3, reembed_every=2)
    list(stream_watch)
    # Frame 0: the three new tracks of both sources in one call; frame 2: the three again, stale after 2 frames.
    assert counting.calls == [3, 3] and stream_watch.summary()["embedded"] == 6


def test_detecting_every_third_frame_gives_the_same_ids(analyzer, tmp_path):
    clip = two_faces_clip(tmp_path / "slow.mp4", 12, step=3)  # slow: the faces never meet

    def tracks(detect_every):
        frames, _ = split(list(watch_streams(clip, analyzer, detect_every=detect_every)))
        return [{face["track"]: face["box"] for face in f["faces"]} for f in frames]

    every, third = tracks(1), tracks(3)
    assert len(every) == len(third) == 12
    assert [sorted(f) for f in every] == [sorted(f) for f in third] == [[1, 2]] * 12
    # Between whole-frame passes the boxes come from region passes around the tracked faces: they stay on the
    # faces, their centres near those of whole-frame passes, their sizes alike. (The detector's boxes differ by up
    # to 20 px between the two, as they look at the face at another scale.)
    centre = lambda box: np.array([box[0] + box[2], box[1] + box[3]]) / 2
    side = lambda box: box[2] - box[0] + 1
    for a, b in zip(every, third):
        for track in a:
            assert np.abs(centre(a[track]) - centre(b[track])).max() <= 20  # measured at most 16
            assert 0.75 < side(b[track]) / side(a[track]) < 1.33  # measured 1.0 to 1.21
    assert third[4][2] != third[3][2] != third[5][2]  # region passes measure the face, not the last box repeated


def test_json_lines_of_two_sources_from_the_command_line(engines_dir, astronaut_pan, tmp_path):
    from facestyle.cli import main

    short = two_faces_clip(tmp_path / "two.mp4", 4)
    out = tmp_path / "lines.jsonl"
    assert main(["watch", "--source", str(short), "--source", str(astronaut_pan), "--json-lines", str(out),
                 "--detect-every", "2", "--engines", str(engines_dir), "--quiet"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    frames = [r for r in records if "frame" in r]
    events = [r for r in records if "event" in r]
    assert len(frames) == 4 + 12 and len(frames) + len(events) == len(records)
    for r in frames:
        assert set(r) == FRAME_KEYS and isinstance(r["time_s"], float)
        for face in r["faces"]:
            assert set(face) == FACE_KEYS and face["identity"] is None and face["distance"] is None  # no gallery
            assert isinstance(face["track"], int) and len(face["box"]) == 4
    for e in events:
        assert set(e) == EVENT_KEYS and e["event"] in ("track_start", "identified", "track_end", "source_end")
    assert sorted(e["event"] for e in events) == ["source_end"] * 2 + ["track_end"] * 3 + ["track_start"] * 3


def test_each_source_gets_its_own_annotated_video(engines_dir, astronaut_pan, tmp_path, capsys):
    from facestyle.cli import main

    short, out = two_faces_clip(tmp_path / "two.mp4", 4), tmp_path / "videos"
    assert main(["watch", "--source", str(short), "--source", str(astronaut_pan), "--out", str(out), "--max-frames", "6",
                 "--engines", str(engines_dir), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.mp4", "two.mp4"]  # nothing else, no partial file
    two, astronaut = read_video(out / "two.mp4"), read_video(out / "astronaut.mp4")
    assert (len(two), two[0].shape, len(astronaut), astronaut[0].shape) == (4, (320, 480, 3), 6, (240, 320, 3))
    for drawn, original in ((two[0], read_video(short)[0]), (astronaut[0], read_video(astronaut_pan)[0])):
        changed = np.abs(drawn.astype(np.float32) - original).max(axis=2) > 60
        assert changed.mean() > 0.005  # the boxes and labels, in each source's own video
    capsys.readouterr()

    argv = ["watch", "--source", str(short), "--source", str(short), "--out", str(tmp_path / "again")]
    assert main([*argv, "--engines", str(engines_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("facestyle watch: error: --out") and "is given twice" in err and err.count("\n") == 1


def test_each_sources_video_is_named_after_it_file_safe():
    from facestyle.cli.streams import _video_outputs

    folder = Path("out")
    names = [p.name for p in _video_outputs(folder, ["a/door.mp4", "b/door.mp4", "0", "rtsp://ann:secret@cam.local:8554/live/1"])]
    assert names == ["door.mp4", "door-2.mp4", "camera-0.mp4", "cam.local_8554_live_1.mp4"]  # never the password
    assert _video_outputs(Path("one.mp4"), ["rtsp://cam/x"]) == [Path("one.mp4")]  # one source: --out is the file


def test_a_label_gives_the_track_name_distance_and_quality():
    from facestyle.streams.annotate import label

    assert label({"track": 3, "box": [0, 0, 9, 9], "identity": "ada", "distance": 0.314, "quality": 0.826}) == \
        "#3 ada 0.31 q0.83"
    assert label({"track": 4, "box": [0, 0, 9, 9], "identity": None, "distance": None, "quality": 0.5}) == "#4 q0.50"
    assert label({"box": [0, 0, 9, 9], "identity": None, "distance": None}) is None  # a photo with no gallery


# -- sources -------------------------------------------------------------------------------------------------------
def test_a_live_source_keeps_only_the_newest_frame_and_counts_the_dropped(astronaut_pan, tmp_path):
    fast = write_video(tmp_path / "fast.mp4", read_video(astronaut_pan), fps=480.0)
    with Sources([str(fast)], realtime=True) as sources:  # read like a camera: at its rate, nothing waits for us
        reader = sources.readers[0]
        assert reader.join(timeout=30)
        ticks = list(sources.ticks())
    assert [[(r.name, f and f.index) for r, f in tick] for tick in ticks] == [[(str(fast), 11), (str(fast), None)]]
    assert (reader.frames, reader.dropped, reader.error) == (12, 11, None)


def test_a_file_is_read_in_order_and_never_dropped(astronaut_pan):
    with Sources([str(astronaut_pan)]) as sources:
        taken = [frame.index for tick in sources.ticks() for _, frame in tick if frame is not None]
    assert taken == list(range(12)) and sources.readers[0].dropped == 0


def test_a_url_is_opened_and_one_that_fails_does_not_stop_a_file(astronaut_pan):
    url = "rtsp://127.0.0.1:9/none"  # the discard port: nothing answers on loopback
    with pytest.raises(BadInputError, match=r"rtsp://127.0.0.1:9/none: cannot be opened \(nothing answers there"):
        open_source(url)
    with Sources([url, str(astronaut_pan)]) as sources:  # the URL is lost, not ended: it is retried until closed
        taken = []
        for tick in sources.ticks():
            taken += [(r.name, item.event if isinstance(item, Event) else item and item.index) for r, item in tick]
            if {(url, "source_lost"), (str(astronaut_pan), None)} <= set(taken):
                break
    assert [index for name, index in taken if name == str(astronaut_pan)] == [*range(12), None]
    assert [index for name, index in taken if name == url] == ["source_lost"]
    assert sources.readers[0].error is None and sources.readers[1].error is None
