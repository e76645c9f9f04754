"""Face quality: one score in [0, 1] per face, and enrolment that refuses a poor photo unless allowed."""

import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

from conftest import FACES, SHARED_DATA, require_shared
from facestyle.cli import main
from facestyle.face.analyzer import Aligned, FaceAnalyzer
from facestyle.face.gallery import Gallery, enroll_photos
from facestyle.face.quality import (
    DEFAULT_MIN_QUALITY,
    POOR_ENROLMENT,
    QualityParts,
    laplacian_variance,
    quality_of,
    quality_parts,
    yaw_offsets,
)

LFW = SHARED_DATA / "lfw-view1" / "lfw-deepfunneled"
# dlib's 5-point mean face (align._TEMPLATE_5), scaled to a 150 px chip: a frontal face
FRONTAL = np.array([[129, 32], [97, 34], [18, 32], [50, 34], [74, 94]], np.float64)


def photo(name: str) -> str:
    return str(next(require_shared(FACES).rglob(name)))


def lfw_photo(name: str, number: int) -> str:
    return str(require_shared(LFW) / name / f"{name}_{number:04d}.jpg")


@pytest.fixture(scope="module")
def analyzer(engines_dir):
    with FaceAnalyzer.from_engines(engines_dir) as a:
        yield a


def only_face(analyzer, pixels, upsample: int = 0) -> QualityParts:
    aligned = analyzer.align(np.asarray(pixels), upsample=upsample)
    assert len(aligned) == 1
    return quality_parts(aligned)[0]


def blurred(path: str, sigma: float, out) -> str:
    Image.open(path).convert("RGB").filter(ImageFilter.GaussianBlur(sigma)).save(out, quality=95)
    return str(out)


def test_yaw_is_zero_for_a_frontal_face_and_grows_as_the_nose_nears_an_eye():
    turned = FRONTAL.copy()
    turned[4] = (FRONTAL[2] + FRONTAL[3]) / 2  # the point below the nose under the image-left eye: a profile
    offsets = yaw_offsets(np.stack([FRONTAL, turned]))
    assert abs(offsets[0]) < 0.01 and offsets[1] == pytest.approx(-0.5, abs=0.01)


def test_sharpness_falls_with_blur_and_an_empty_set_scores_nothing():
    rng = np.random.default_rng(0)
    chip = rng.integers(0, 256, (1, 150, 150, 3), dtype=np.uint8)
    soft = np.asarray(Image.fromarray(chip[0]).filter(ImageFilter.GaussianBlur(2)))[None]
    assert laplacian_variance(chip)[0] > 20 * laplacian_variance(soft)[0]
    empty = Aligned(np.zeros((0, 4), int), np.zeros(0), np.zeros((0, 5, 2), int), np.zeros((0, 150, 150, 3), np.uint8))
    assert quality_of(empty).shape == (0,) and quality_parts(empty) == []


def test_every_face_of_a_group_photo_scores_within_0_and_1(analyzer):
    aligned = analyzer.align(photo("multiface.jpg"))
    scores = quality_of(aligned)
    assert len(scores) == len(aligned) >= 5 and scores.dtype == np.float64
    assert np.all((scores >= 0) & (scores <= 1))
    assert np.allclose(scores, [p.score for p in quality_parts(aligned)])
    assert scores.min() >= POOR_ENROLMENT  # sharp, frontal faces about 80-96 px wide


def test_a_sharp_frontal_face_scores_above_the_same_face_blurred_or_40_px_wide(analyzer):
    image = Image.open(photo("obama.jpg")).convert("RGB")
    sharp = only_face(analyzer, image)
    assert sharp.score >= 0.9 and abs(sharp.yaw_offset) < 0.15
    soft = only_face(analyzer, image.filter(ImageFilter.GaussianBlur(sharp.width_px / 30)))
    assert soft.score < DEFAULT_MIN_QUALITY < sharp.score and soft.weakest() == "sharpness"
    assert soft.reasons() == ["blurred"]
    scale = 40 / sharp.width_px
    small = only_face(analyzer, image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR),
                      upsample=2)
    assert small.width_px < 50 and small.score < sharp.score - 0.15
    assert small.weakest() in ("size", "sharpness")


def test_a_face_turned_away_scores_below_a_frontal_one(analyzer):
    frontal = only_face(analyzer, Image.open(lfw_photo("Aaron_Peirsol", 1)))
    profile = only_face(analyzer, Image.open(lfw_photo("Michael_Linscott", 1)))  # a three-quarter view, sharp
    assert abs(profile.yaw_offset) > 0.5 > abs(frontal.yaw_offset) + 0.3
    assert profile.score < POOR_ENROLMENT < frontal.score
    assert profile.weakest() == "pose" and "turned away" in profile.reasons()


def test_enrolment_refuses_a_blurred_photo_unless_poor_ones_are_allowed(analyzer, tmp_path):
    soft = blurred(photo("obama.jpg"), 8, tmp_path / "obama-soft.jpg")
    gallery = Gallery.open(tmp_path / "g.db", analyzer.embedder.identity)
    refused = enroll_photos(gallery, analyzer, "obama", [soft])
    (outcome,) = refused
    assert outcome.status == "poor quality" and outcome.refused and not refused.committed
    assert outcome.detail.startswith("quality 0.") and outcome.detail.endswith(f"under {POOR_ENROLMENT:.2f}: blurred")
    assert outcome.quality.sharpness < 0.5 and gallery.people() == []
    allowed = enroll_photos(gallery, analyzer, "obama", [soft], allow_poor=True)
    assert [o.status for o in allowed] == ["enrolled"] and allowed.committed
    assert allowed[0].quality.score < POOR_ENROLMENT and gallery.people() == [("obama", 1)]
    gallery.close()


def test_enroll_command_reports_quality_and_refuses_a_poor_photo_in_place(engines_dir, tmp_path, capsys):
    soft = blurred(photo("obama.jpg"), 8, tmp_path / "soft.jpg")
    sharp, g, common = photo("obama.jpg"), str(tmp_path / "people.db"), ["--engines", str(engines_dir)]
    assert main(["enroll", "--skip-bad", "--gallery", g, "obama", soft, sharp, *common]) == 2
    out = capsys.readouterr()
    assert f"facestyle enroll: error: {soft}: poor quality (quality 0.00, under {POOR_ENROLMENT:.2f}: blurred; " \
           "pass --allow-poor to enrol it anyway)" in out.err.splitlines()
    assert f"{sharp}: enrolled (obama), quality 1.00" in out.out.splitlines()
    assert "1 photo(s) of 1 person enrolled; 1 refused and skipped" in out.err
    assert main(["enroll", "--allow-poor", "--json", "--gallery", g, "obama", soft, sharp, *common]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["status"] for e in entries] == ["enrolled", "duplicate"]
    assert entries[0]["quality"]["sharpness"] == 0.0 and entries[1]["quality"]["score"] == 1.0
    assert entries[0]["quality"]["width_px"] > 200 and "error" not in entries[0]
