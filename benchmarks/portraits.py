"""Portraits for the style benchmarks, and what a viewer sees in a stylised one: the person, and the picture's layout.

A portrait is a square around the largest face of a photo (twice the face's box, centred on it, kept inside the
photo), resized to 384 px. Two sets, of people no style net was trained on:

  validation  LFW View 1 ``pairsDevTrain.txt`` people, one photo each (every 40th of the "same" pairs) - what
              ``style_select.py`` chooses nets on;
  test        LFW View 1 ``pairsDevTest.txt`` people (a disjoint set of people), one photo each, and the single-face
              photos of ``../shared/data/faces`` - what ``style_quality.py`` reports.

Training photos may include other DevTrain people (``train_portrait_files``), never these.

**Identity kept**: facestyle's own face pipeline runs on the stylised portrait; the identity is kept when a face is
found where it was (intersection over union >= 0.5 with the photo's face) and its embedding lies within the
embedding model's pair threshold of the photo's. **Structure kept**: SSIM of luminance at 96x96 against the photo
(the layout of light and dark a viewer recognises at a glance, not the strokes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LFW = SHARED / "lfw-view1"
FACES = SHARED / "faces"
SIDE = 384
SSIM_SIDE = 96
MIN_IOU = 0.5
# Single-face photos of the faces folder (several photos of one person count once).
TEST_FACE_PHOTOS = (
    "face_recognition_examples/examples/obama.jpg",
    "face_recognition_examples/examples/biden.jpg",
    "face_recognition_examples/examples/knn_examples/test/johnsnow_test1.jpg",
    "face_recognition_examples/examples/knn_examples/train/rose_leslie/img1.jpg",
    "face_recognition_examples/examples/alex-lacamoire.png",
    "face_recognition_examples/examples/lin-manuel-miranda.png",
    "facenet_pytorch/data/test_images/angelina_jolie/1.jpg",
    "facenet_pytorch/data/test_images/kate_siegel/1.jpg",
    "facenet_pytorch/data/test_images/paul_rudd/1.jpg",
    "facenet_pytorch/data/test_images/shea_whigham/1.jpg",
)


@dataclass
class Portrait:
    name: str
    image: np.ndarray  # (SIDE, SIDE, 3) uint8
    face: object  # the largest face found in ``image`` (facestyle.face.analyzer.Face)


def lfw_people(pairs_file: str) -> list[tuple[str, int]]:
    """(person, photo number) of the "same" pairs' first photos, in file order."""
    lines = (LFW / pairs_file).read_text().splitlines()
    count = int(lines[0])
    return [(parts[0], int(parts[1])) for parts in (line.split("\t") for line in lines[1:count + 1])]


def lfw_file(person: str, number: int) -> Path:
    return LFW / "lfw-deepfunneled" / person / f"{person}_{number:04d}.jpg"


def validation_files() -> list[Path]:
    return [lfw_file(*p) for p in lfw_people("pairsDevTrain.txt")[::40][:24]]


def test_files() -> list[Path]:
    lfw = [lfw_file(*p) for p in lfw_people("pairsDevTest.txt")[::42][:12]]
    return [FACES / name for name in TEST_FACE_PHOTOS if (FACES / name).is_file()] + lfw


def train_portrait_files(limit: int = 200) -> list[Path]:
    """DevTrain people's photos, none of a validation person's: portraits a style net may learn to keep."""
    held_out = {p.parent.name for p in validation_files()}
    people = sorted({person for person, _ in lfw_people("pairsDevTrain.txt")} - held_out)
    files = [lfw_file(person, 1) for person in people]
    return [f for f in files if f.is_file()][:limit]


def square_around(image: np.ndarray, box, side: int = SIDE) -> np.ndarray:
    """A square of twice the face box's larger side, centred on it and shifted (or shrunk) to fit the photo."""
    left, top, right, bottom = (float(v) for v in box)
    h, w = image.shape[:2]
    size = min(2 * max(right - left, bottom - top), h, w)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0 = int(round(min(max(cx - size / 2, 0), w - size)))
    y0 = int(round(min(max(cy - size / 2, 0), h - size)))
    crop = image[y0:y0 + int(size), x0:x0 + int(size)]
    return np.asarray(Image.fromarray(crop).resize((side, side), Image.LANCZOS))


def portraits(analyzer, files: list[Path], side: int = SIDE) -> list[Portrait]:
    """The portraits of ``files`` whose photo and square both show a face (each photo's largest)."""
    from facestyle.images import load_image

    out = []
    for path in files:
        photo = load_image(path)
        faces = analyzer.faces(photo)
        if not faces:
            continue
        image = square_around(photo, max(faces, key=lambda f: f.area).box, side)
        found = analyzer.faces(image)
        if found:
            out.append(Portrait(f"{path.parent.name}/{path.name}", image, max(found, key=lambda f: f.area)))
    return out


def iou(a, b) -> float:
    ax0, ay0, ax1, ay1 = (float(v) for v in a)
    bx0, by0, bx1, by1 = (float(v) for v in b)
    w, h = min(ax1, bx1) - max(ax0, bx0) + 1, min(ay1, by1) - max(ay0, by0) + 1
    inter = max(w, 0) * max(h, 0)
    union = (ax1 - ax0 + 1) * (ay1 - ay0 + 1) + (bx1 - bx0 + 1) * (by1 - by0 + 1) - inter
    return inter / union


def identity(analyzer, portrait: Portrait, stylised: np.ndarray) -> dict:
    """Whether ``stylised`` keeps the portrait's person: found (IoU >= 0.5 with the photo's face) and within the
    model's threshold; the distance is None where no face is found there."""
    found = [f for f in analyzer.faces(stylised) if iou(f.box, portrait.face.box) >= MIN_IOU]
    if not found:
        return {"found": False, "distance": None, "kept": False}
    face = max(found, key=lambda f: iou(f.box, portrait.face.box))
    distance = float(np.linalg.norm(face.embedding - portrait.face.embedding))
    return {"found": True, "distance": round(distance, 4), "kept": distance <= analyzer.threshold}


def luminance(image: np.ndarray, side: int) -> np.ndarray:
    small = Image.fromarray(image).resize((side, side), Image.LANCZOS)
    return np.asarray(small.convert("L"), np.float64)


def structure_ssim(photo: np.ndarray, stylised: np.ndarray, side: int = SSIM_SIDE) -> float:
    """SSIM (scikit-image, 7x7 window) of the two images' luminance at ``side`` x ``side``."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(luminance(photo, side), luminance(stylised, side), data_range=255))
