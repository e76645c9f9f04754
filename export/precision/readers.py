"""Calibration readers: real input batches for int8 calibration, fed as each model's runtime feeds it.

The export kinds table (``facestyle.export.kinds``) names one reader per kind, all with the signature
``(fp32, engines_dir, count, data_dir) -> CalibrationReader``: :func:`face_chip_calibration`,
:func:`photo_calibration` and :func:`style_calibration`. Where the data come from is
``facestyle.export.datasets``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facestyle.errors import BadInputError

from .. import datasets


class CalibrationReader:
    """Real input batches for int8 calibration, like onnxruntime's ``CalibrationDataReader``:
    ``get_next()`` returns a feed dict or None when done, ``rewind()`` starts again.
    ``source`` says where the inputs came from (it goes into the manifest)."""

    source: str = "unspecified"

    def get_next(self) -> dict[str, np.ndarray] | None:
        raise NotImplementedError

    def rewind(self) -> None:
        raise NotImplementedError

    @property
    def count(self) -> int:
        """Inputs (images or chips) over all batches."""
        raise NotImplementedError

    def batches(self) -> list[dict[str, np.ndarray]]:
        """Every batch once, from the start (rewinds before and after)."""
        self.rewind()
        out = []
        while (feed := self.get_next()) is not None:
            out.append(feed)
        self.rewind()
        return out


class FeedListReader(CalibrationReader):
    """Feeds prepared up front: one ``{input_name: array}`` per batch."""

    def __init__(self, feeds: list[dict[str, np.ndarray]], source: str):
        self._feeds, self.source, self._next = list(feeds), source, 0

    def get_next(self):
        if self._next >= len(self._feeds):
            return None
        self._next += 1
        return self._feeds[self._next - 1]

    def rewind(self) -> None:
        self._next = 0

    @property
    def count(self) -> int:
        return sum(len(next(iter(f.values()))) for f in self._feeds)


class FaceChipReader(FeedListReader):
    """Aligned uint8 chips, preprocessed by the runtime's own ``FaceEmbedder.preprocess`` for ``model``."""

    def __init__(self, chips: np.ndarray, model: str | Path, source: str, batch_size: int = 16):
        from facestyle.face.embedder import FaceEmbedder

        chips = np.asarray(chips)
        if chips.ndim != 4 or chips.dtype != np.uint8 or len(chips) == 0:
            raise BadInputError(f"calibration chips: expected uint8 (N>0, H, W, 3), got {chips.dtype}{list(chips.shape)}")
        embedder = FaceEmbedder.from_onnx(model)
        name = embedder.contract.input_name
        feeds = [{name: embedder.preprocess(chips[i : i + batch_size])} for i in range(0, len(chips), batch_size)]
        embedder.close()
        super().__init__(feeds, source)


class PhotoReader(FeedListReader):
    """Photos turned into the detector's tiled pyramid tensor, as ``FaceDetector.detect`` feeds the model."""

    def __init__(self, images: list[np.ndarray], model: str | Path, source: str):
        from facestyle.backends.onnxruntime import OnnxRuntimeBackend
        from facestyle.contract import DetectorContract
        from facestyle.face.detector import build_pyramid_tensor

        backend = OnnxRuntimeBackend(model, ("CPUExecutionProvider",)).activate()
        contract = DetectorContract.from_metadata(backend.metadata, str(model))
        backend.deactivate()
        feeds = [{contract.input_name: build_pyramid_tensor(image, contract)[0]} for image in images]
        super().__init__(feeds, source)


class StylePhotoReader(FeedListReader):
    """RGB photos as float32 NCHW, the style networks' ``image`` input (0..255 unless the contract's
    ``input_range`` says otherwise), one photo per batch."""

    def __init__(self, images: list[np.ndarray], source: str, input_name: str = "image", input_range=(0.0, 255.0)):
        low, high = (np.float32(v) for v in input_range)
        scale = (high - low) / np.float32(255)
        feeds = [{input_name: np.ascontiguousarray((np.asarray(i, np.float32) * scale + low).transpose(2, 0, 1)[None])}
                 for i in images]
        super().__init__(feeds, source)


def style_input(model: str | Path | None) -> tuple[str, tuple[float, float]]:
    """(input name, input range) from a style model's contract metadata; ("image", 0..255) without one."""
    if model is None:
        return "image", (0.0, 255.0)
    from .artifacts import load_onnx

    metadata = {p.key: p.value for p in load_onnx(Path(model)).metadata_props}
    name = json.loads(metadata.get("facestyle.input_name", '"image"'))
    return name, tuple(json.loads(metadata.get("facestyle.input_range", "[0, 255]")))


def style_reader(count: int = 8, size: int = 256, data_dir: Path | None = None, folder: str = "bsds500",
                 model: str | Path | None = None) -> StylePhotoReader:
    """Content photos (shared ``content/<folder>`` when present, else skimage's) at ``size`` x ``size``,
    fed as ``model``'s contract says."""
    images, source = datasets.content_photos(count, size, data_dir, folder)
    return StylePhotoReader(images, source, *style_input(model))


# -- the export kinds table's readers: (fp32, engines_dir, count, data_dir) -> CalibrationReader ----
def face_chip_calibration(fp32: Path, engines_dir: Path, count: int, data_dir: Path) -> FaceChipReader:
    """``count`` (default build: 256) LFW DevTrain chips for a face embedder."""
    chips, source = datasets.devtrain_chips(Path(engines_dir), count, data_dir)
    return FaceChipReader(chips, fp32, source)


def photo_calibration(fp32: Path, engines_dir: Path, count: int, data_dir: Path) -> PhotoReader:
    """Up to 24 LFW DevTrain photos for the detector (each is a whole pyramid: more add little)."""
    images, source = datasets.devtrain_photos(min(count, 24), data_dir)
    return PhotoReader(images, fp32, source)


def style_calibration(fp32: Path, engines_dir: Path, count: int, data_dir: Path) -> StylePhotoReader:
    """Up to 8 content photos for a style network (256 x 256 each)."""
    return style_reader(min(count, 8), data_dir=data_dir, model=fp32)
