"""Where calibration and measurement data come from: a data folder (LFW View 1, content photos, face
photos) named by the caller or by ``$FACESTYLE_DATA``, scikit-image's public-domain photos without one.

LFW photos go through detection and alignment once: their chips are cached on disk, keyed by the
pairs file, detector, landmarks, upsampling and the evaluation's face-not-found policy
(``facestyle.face.evaluation.subject_chip``); then each variant only embeds them.

Calibration uses DevTrain only; measurement uses DevTest (and DevTrain to re-derive a threshold).
The readers (``precision.readers``) and the measurements (``precision.measure``) import this
module; it imports neither.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facestyle.face import lfw
from facestyle.face.evaluation import POLICY, default_cache_path, subject_chip
from facestyle.images import load_image
from facestyle.manifest import atomic_write_bytes, file_sha256

CHIP_CACHE_VERSION = 1
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def default_data_dir() -> Path | None:
    """``$FACESTYLE_DATA`` (a folder holding ``lfw-view1/``, ``content/``, ``faces/``), else None."""
    value = os.environ.get("FACESTYLE_DATA")
    return Path(value) if value else None


def data_root(data_dir: Path | None) -> Path | None:
    """``data_dir`` when given, else ``$FACESTYLE_DATA``; None where neither names a folder."""
    return Path(data_dir) if data_dir else default_data_dir()


def lfw_dir(data_dir: Path | None) -> Path | None:
    """LFW View 1 in the data folder, or None where it (its DevTrain pairs) is absent or no folder is named."""
    root = data_root(data_dir)
    return root / "lfw-view1" if root and (root / "lfw-view1" / "pairsDevTrain.txt").is_file() else None


def spread(items: list, count: int) -> list:
    """``count`` items spread evenly over ``items`` (deterministic, covers the whole alphabet of LFW)."""
    if count >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def _photo_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES) if folder.is_dir() else []


# -- LFW chips, made once ----------------------------------------------------------------------
@dataclass(frozen=True)
class LfwChips:
    """The subject chip of every image a pairs file names, by the evaluation's face-not-found policy."""

    pairs: list  # list[lfw.Pair]
    files: list[Path]
    found: np.ndarray  # (N,) bool: a face was detected (else the centred box was used)
    chips: np.ndarray  # (N, H, W, 3) uint8

    def index(self) -> dict[Path, int]:
        return {f: i for i, f in enumerate(self.files)}


def pipeline_analyzer(engines_dir: Path):
    """The fp32 pipeline from ``engines_dir`` (its embedder gives the chip size), with the landmarks'
    sha256 that keys the chip cache."""
    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.face.landmarks import ARTIFACT_STEM, MODEL_NAME
    from facestyle.loading import find_built

    analyzer = FaceAnalyzer.from_engines(engines_dir)
    analyzer.landmarks_sha256 = find_built(engines_dir, MODEL_NAME, ARTIFACT_STEM).manifest["artifact_sha256"]
    return analyzer


def _chip_cache_file(analyzer, pairs_file: Path, cache_dir: Path | None) -> Path:
    """One .npz per (pairs file, detector, landmarks, upsampling, policy): any change makes a new one."""
    key = json.dumps([
        CHIP_CACHE_VERSION, hashlib.sha256(Path(pairs_file).read_bytes()).hexdigest(),
        file_sha256(analyzer.detector.backend.model_path), analyzer.landmarks_sha256, analyzer.upsample, POLICY,
    ])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return (cache_dir or default_cache_path().parent / "chips") / f"{Path(pairs_file).stem}-{digest}.npz"


def lfw_chips(analyzer, root: Path, pairs_file: Path, cache_dir: Path | None = None, progress: bool = True) -> LfwChips:
    """Chips of every image of ``pairs_file``, from the cache when the same pipeline made them before."""
    from facestyle.progress import Progress

    pairs = lfw.read_pairs(pairs_file, root)
    files = sorted({p.a for p in pairs} | {p.b for p in pairs})
    cache_file = _chip_cache_file(analyzer, pairs_file, cache_dir)
    names = np.array([str(f.relative_to(root)) for f in files])
    if cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as cached:
            if np.array_equal(cached["files"], names):
                return LfwChips(pairs, files, cached["found"], cached["chips"])
    found, chips = [], []
    with Progress(len(files), f"aligning {Path(pairs_file).name}", enabled=progress) as bar:
        for path in files:
            ok, chip = subject_chip(analyzer, load_image(path))
            found.append(ok)
            chips.append(chip)
            bar.update()
    result = LfwChips(pairs, files, np.array(found), np.stack(chips))
    buffer = io.BytesIO()
    np.savez(buffer, files=names, found=result.found, chips=result.chips)
    atomic_write_bytes(cache_file, buffer.getvalue())
    return result


def skimage_chips(engines_dir: Path, count: int) -> tuple[np.ndarray, str]:
    """(chips, source): aligned chips of the faces in skimage's photos (the astronaut), topped up with
    photo crops. For a machine without the shared LFW."""
    from facestyle.face.analyzer import FaceAnalyzer

    from .sample_inputs import natural_chips, skimage_data_dir

    analyzer = FaceAnalyzer.from_engines(engines_dir)
    image = load_image(skimage_data_dir() / "astronaut.png")
    faces = analyzer.chips(image, analyzer.detector.detect(image).boxes)[1]
    crops = natural_chips(max(count - len(faces), 1))
    source = f"scikit-image data (no shared LFW): {len(faces)} aligned face chip(s) from astronaut.png + {len(crops)} photo crops"
    return np.concatenate([faces, crops])[:count], source


# -- calibration data ----------------------------------------------------------------------------
def devtrain_chips(engines_dir: Path, count: int, data_dir: Path | None) -> tuple[np.ndarray, str]:
    """(chips, source): ``count`` chips of LFW View 1 DevTrain photos (never DevTest, the evaluation
    set) in which a face was found, made by the project's own detector, landmarks and alignment;
    skimage's photos where the shared data is absent."""
    root = lfw_dir(data_dir)
    if root is None:
        return skimage_chips(engines_dir, count)
    devtrain = lfw_chips(pipeline_analyzer(engines_dir), root, root / "pairsDevTrain.txt")
    chips = devtrain.chips[spread(list(np.flatnonzero(devtrain.found)), count)]
    return chips, f"LFW View 1 DevTrain ({root}): {len(chips)} chips by facestyle's detector+landmarks+alignment"


def devtrain_photos(count: int, data_dir: Path | None) -> tuple[list[np.ndarray], str]:
    """(photos, source): ``count`` LFW View 1 DevTrain photos; skimage's photos where the shared data is absent."""
    from .sample_inputs import natural_images

    root = lfw_dir(data_dir)
    if root is None:
        images = natural_images([(240, 320), (333, 517), (300, 300), (250, 250)] * max(1, count // 4))[:count]
        return images, f"scikit-image data photos (no shared LFW): {len(images)} images"
    pairs = lfw.read_pairs(root / "pairsDevTrain.txt", root)
    files = spread(sorted({p.a for p in pairs} | {p.b for p in pairs}), count)
    images = [load_image(f) for f in files]
    return images, f"LFW View 1 DevTrain ({root}): {len(images)} photos, 250x250"


def content_photos(count: int, size: int, data_dir: Path | None, folder: str = "bsds500") -> tuple[list[np.ndarray], str]:
    """(photos, source): ``count`` content photos at ``size`` x ``size``, from the shared
    ``content/<folder>`` when present, else skimage's (style calibration and measurement)."""
    from PIL import Image

    from .sample_inputs import natural_images

    root = data_root(data_dir)
    photos = root / "content" / folder if root else None
    files = _photo_files(photos) if photos else []
    if not files:
        images = natural_images([(size, size)] * count)
        missing = photos or "data folder: $FACESTYLE_DATA is unset"
        return images, f"scikit-image data photos (no {missing}): {len(images)} at {size}x{size}"
    images = [np.asarray(Image.fromarray(load_image(f)).resize((size, size), Image.BILINEAR)) for f in spread(files, count)]
    return images, f"content photos ({photos}): {len(images)} at {size}x{size}"


# -- measurement data ----------------------------------------------------------------------------
def detector_photos(data_dir: Path | None, max_side: int = 640) -> list[np.ndarray]:
    """The data folder's faces photos (distinct files, shrunk to ``max_side`` to keep this quick), else skimage's
    astronaut and a few other photos."""
    from PIL import Image

    from .sample_inputs import natural_images, skimage_data_dir

    root = data_root(data_dir)
    files = _photo_files(root / "faces") if root else []
    if not files:
        return [load_image(skimage_data_dir() / "astronaut.png"), *natural_images([(240, 320), (333, 517)])]
    seen, images = set(), []
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        image = Image.fromarray(load_image(path))
        image.thumbnail((max_side, max_side), Image.BILINEAR)
        images.append(np.asarray(image))
    return images
