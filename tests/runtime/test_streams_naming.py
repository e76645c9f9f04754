"""Names per track from quality-weighted evidence, against naming every frame alone, on real faces.

The scenes are real LFW faces on a real photo (``stream_scenes``), written through mp4v as a camera's encoder
would; some frames blur the face (Gaussian blur of the face patch before encoding). The gallery holds Colin
Powell and Tony Blair, each enrolled from another LFW photo of theirs than the one in the scene.
"""

import numpy as np
import pytest
from stream_scenes import LFW, face_patch, scene, write_video

from conftest import CountingEmbedStep
from facestyle.face.quality import DEFAULT_MIN_QUALITY
from facestyle.streams import Event, FrameResult, watch
from facestyle.streams.identities import HIGH_QUALITY

pytest.importorskip("cv2", reason="OpenCV (the video extra) is not installed: pip install 'facestyle[video]'")


@pytest.fixture(scope="module")
def analyzer(engines_dir):
    from facestyle.face.analyzer import FaceAnalyzer

    return FaceAnalyzer.from_engines(engines_dir)


@pytest.fixture(scope="module")
def gallery(analyzer, tmp_path_factory):
    from facestyle.face.gallery import Gallery, enroll_photos

    gallery = Gallery.open(tmp_path_factory.mktemp("gallery") / "people.db", analyzer.embedder.identity)
    for name, person, number in (("colin", "Colin_Powell", 74), ("tony", "Tony_Blair", 94)):
        assert enroll_photos(gallery, analyzer, name, [LFW / person / f"{person}_{number:04d}.jpg"])[0].status == "enrolled"
    return gallery


def blurred(patch: np.ndarray, radius: float) -> np.ndarray:
    from PIL import Image, ImageFilter

    return np.asarray(Image.fromarray(patch).filter(ImageFilter.GaussianBlur(radius))) if radius else patch


def colin_clip(path, radii) -> str:
    """Colin Powell still, his face blurred by ``radii[i]`` in frame i."""
    patch = face_patch("Colin_Powell", 38)
    return str(write_video(path, [scene([(blurred(patch, r), lambda i: (200, 90))], 1)[0] for r in radii]))


def faces_of(items) -> list[dict]:
    """The one face of each frame result, as JSON."""
    frames = [i.to_json() for i in items if isinstance(i, FrameResult)]
    assert all(len(f["faces"]) == 1 for f in frames)
    return [f["faces"][0] for f in frames]


def events_of(items) -> list[dict]:
    return [i.to_json() for i in items if isinstance(i, Event)]


def test_a_name_holds_through_blurred_frames_that_name_no_one_on_their_own(analyzer, gallery, tmp_path):
    clip = colin_clip(tmp_path / "blur.mp4", [8 if 4 <= i < 8 else 0 for i in range(12)])
    tracked = watch(clip, analyzer, gallery, reembed_every=1)  # every acceptable face embedded again
    items = list(tracked)
    faces = faces_of(items)
    qualities = [f["quality"] for f in faces]
    print("qualities", qualities)
    assert min(qualities[:4] + qualities[8:]) > 0.95 and max(qualities[6:8]) < DEFAULT_MIN_QUALITY  # measured 0, 0
    assert {f["track"] for f in faces} == {1} and [f["identity"] for f in faces] == ["colin"] * 12
    # Faces under the minimum quality were not embedded: the name rests on the others.
    assert tracked.summary()["embedded"] == sum(q >= DEFAULT_MIN_QUALITY for q in qualities)
    (identified,) = [e for e in events_of(items) if e["event"] == "identified"]
    assert identified["track"] == 1 and identified["time_s"] == 0.0
    assert identified["threshold_source"] == tracked.summary()["threshold_source"]
    assert "too few to calibrate a 1:N threshold" in identified["threshold_source"]  # 2 people enrolled

    per_frame = watch(clip, analyzer, gallery, naming="frame")
    items = list(per_frame)
    faces = faces_of(items)
    print("per frame", [(f["identity"], f["distance"]) for f in faces])
    # Named from each frame alone, the blurred frames name no one: the name comes and goes with the blur.
    assert [f["identity"] for f in faces] == ["colin"] * 4 + ["unknown"] * 4 + ["colin"] * 4
    assert per_frame.summary()["embedded"] == 12 and per_frame.summary()["naming"] == "frame"
    assert [e["time_s"] for e in events_of(items) if e["event"] == "identified"] == [0.0, pytest.approx(8 / 12, abs=1e-6)]
    assert per_frame.summary()["threshold"] == analyzer.threshold  # the pair threshold, as for two photos
    assert "1:N" not in per_frame.summary()["threshold_source"]


def test_a_face_under_the_minimum_quality_is_tracked_but_never_named(analyzer, gallery, tmp_path):
    clip = colin_clip(tmp_path / "soft.mp4", [4] * 6)
    accepted = faces_of(watch(clip, analyzer, gallery))
    assert accepted[-1]["identity"] == "colin"  # at the default minimum quality, named
    qualities = [f["quality"] for f in accepted]
    assert DEFAULT_MIN_QUALITY < min(qualities) and max(qualities) < 0.6  # measured 0.51 to 0.53

    strict = watch(clip, analyzer, gallery, min_quality=0.6)
    items = list(strict)
    faces = faces_of(items)
    assert [f["track"] for f in faces] == [1] * 6 and [f["quality"] for f in faces] == qualities
    assert all(f["identity"] == "unknown" and f["distance"] is None for f in faces)
    assert strict.summary()["embedded"] == 0
    assert [e["event"] for e in events_of(items)] == ["track_start", "track_end", "source_end"]


def test_a_track_is_unknown_until_there_is_enough_evidence(analyzer, gallery, tmp_path):
    clip = colin_clip(tmp_path / "soft.mp4", [4] * 6)  # acceptable faces, none of high quality
    counting = CountingEmbedStep(analyzer.embedder)
    tracked = watch(clip, analyzer.with_embedder(counting), gallery)
    items = list(tracked)
    faces = faces_of(items)
    assert all(DEFAULT_MIN_QUALITY < f["quality"] < HIGH_QUALITY for f in faces)
    # One such face is not enough: unknown after frame 0, named once frame 1 adds its embedding; then the
    # evidence is there and the faces are no better, so nothing more is embedded.
    assert [f["identity"] for f in faces] == ["unknown"] + ["colin"] * 5
    assert counting.calls == [1, 1] and tracked.summary()["embedded"] == 2
    assert [(e["event"], e["time_s"]) for e in events_of(items)][:2] == [("track_start", 0.0),
                                                                         ("identified", pytest.approx(1 / 12, abs=1e-6))]
    # Named from each frame alone, the same face is named at once (and embedded every frame).
    per_frame = watch(clip, analyzer, gallery, naming="frame")
    assert faces_of(per_frame)[0]["identity"] == "colin" and per_frame.summary()["embedded"] == 6


def test_one_sharp_face_is_evidence_enough(analyzer, gallery, tmp_path):
    clip = colin_clip(tmp_path / "sharp.mp4", [0] * 4)
    tracked = watch(clip, analyzer, gallery)
    faces = faces_of(tracked)
    assert faces[0]["quality"] >= HIGH_QUALITY and [f["identity"] for f in faces] == ["colin"] * 4
    assert tracked.summary()["embedded"] == 1


def test_a_face_that_is_not_the_tracks_person_starts_its_evidence_afresh(analyzer):
    from facestyle.images import load_image
    from facestyle.streams.identities import TrackIdentity

    def embedding(person, number):
        faces = analyzer.faces(load_image(LFW / person / f"{person}_{number:04d}.jpg"))
        return max(faces, key=lambda f: f.area).embedding

    ident = TrackIdentity()
    for frame, number in enumerate((38, 120)):
        ident.add(embedding("Colin_Powell", number), 1.0, frame, same_person=analyzer.threshold)
    ident.identity, ident.recheck = "colin", True
    ident.add(embedding("Colin_Powell", 166), 1.0, 3, same_person=analyzer.threshold)  # the same man: kept
    assert (len(ident.embeddings), ident.identity, ident.recheck) == (3, "colin", False)
    tony = embedding("Tony_Blair", 6)
    assert np.linalg.norm(tony - ident.mean()) > analyzer.threshold  # as verify says: another person
    ident.add(tony, 0.7, 4, same_person=analyzer.threshold)  # the track went on with another face
    assert (len(ident.embeddings), ident.identity, ident.best_quality) == (1, "unknown", 0.7)
    assert not ident.has_evidence()  # unnamed until the evidence is enough again


def test_a_track_found_again_after_a_miss_or_clear_of_another_face_is_embedded_again():
    from facestyle.streams.identities import TrackIdentity
    from facestyle.streams.watch import overlapping_boxes

    assert overlapping_boxes([[0, 0, 49, 49], [40, 40, 99, 99], [200, 0, 249, 49]]) == {0, 1}
    assert overlapping_boxes([[0, 0, 49, 49], [50, 0, 99, 49]]) == set()  # touching edges do not overlap
    ident = TrackIdentity(embeddings=[np.zeros(128)] * 2, weights=[1.0, 1.0], best_quality=0.9, last_embedded=10)
    assert not ident.wants_embedding(0.9, 12, reembed_every=30, min_quality=0.4)
    ident.recheck = True
    assert ident.wants_embedding(0.9, 12, reembed_every=30, min_quality=0.4)
    assert not ident.wants_embedding(0.3, 12, reembed_every=30, min_quality=0.4)  # never from a poor face
