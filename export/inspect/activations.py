"""An intermediate tensor exposed by graph surgery, run over images, and each unit's top-9 patches.

:func:`expose` cuts the ONNX graph from the image tensor to one layer (``onnx.utils.Extractor``: what
comes after is dropped, so nothing past the layer runs), and :class:`LayerProbe` runs that sub-model in
onnxruntime through the runtime backend. :func:`top_patches` keeps, per unit (channel), the nine
strongest responses: by default one patch per input (an image, or a face chip) at its strongest
position, so a unit's row shows nine different inputs, as Zeiler and Fergus show them; with
``per_input`` > 1 an input gives several patches, each more than half a field from the others
(for a handful of photos).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facestyle.errors import BadInputError, ModelFormatError
from facestyle.progress import Progress

from .receptive import Field

TOP_K = 9


def expose(model, layer: str, image_tensor: str):
    """A model whose only input is ``image_tensor`` and whose only output is ``layer`` (a ModelProto)."""
    import onnx
    from onnx.utils import Extractor

    produced = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
    if layer not in produced:
        raise BadInputError(f"layer {layer!r}: no such tensor in the model (see --list-layers)")
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference is a help here, not a requirement
        pass
    sub = Extractor(model).extract_model([image_tensor], [layer])
    # Extraction keeps the types inference found; an output without one gets float (the fp32 graphs).
    # Batch and spatial sizes become free (convolutions take any size: crops, other photo shapes), so the
    # sizes inference wrote for the whole model's fixed input are dropped.
    del sub.graph.value_info[:]
    for tensor in list(sub.graph.input) + list(sub.graph.output):
        if not tensor.type.tensor_type.elem_type:
            tensor.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
        for axis, dim in enumerate(tensor.type.tensor_type.shape.dim):
            if axis != 1:
                dim.Clear()
                dim.dim_param = f"axis{axis}"
    return sub


class LayerProbe:
    """``layer``'s activations for NCHW (or NC + spatial) input tensors, run by onnxruntime."""

    def __init__(self, model_path: str | Path, layer: str, image_tensor: str | None = None):
        import onnx

        from facestyle.backends.onnxruntime import OnnxRuntimeBackend

        try:
            model = onnx.load(str(model_path))
        except Exception as exc:  # DecodeError, OSError, ...
            raise ModelFormatError(f"not a readable ONNX model ({exc})", model_path) from None
        self.layer, self.image_tensor = layer, image_tensor or model.graph.input[0].name
        self._tmp = tempfile.TemporaryDirectory(prefix="facestyle-inspect-")
        path = Path(self._tmp.name) / "probe.onnx"
        path.write_bytes(expose(model, layer, self.image_tensor).SerializeToString())
        self.backend = OnnxRuntimeBackend(path).activate()
        entry = self.backend.inference.get_inputs()[0]
        # Inside an fp16 variant the entry tensor (past the graph's own input cast) is float16.
        self.input_name, self.input_dtype = entry.name, np.float16 if entry.type == "tensor(float16)" else np.float32

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        out = self.backend.inference.run([self.layer], {self.input_name: tensor.astype(self.input_dtype, copy=False)})[0]
        return np.asarray(out, np.float32)

    def close(self) -> None:
        self.backend.deactivate()
        self._tmp.cleanup()

    def __enter__(self) -> LayerProbe:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Item:
    """One input: what a person sees (``view``: uint8 RGB at model-input resolution), its tensor, a label."""

    label: str
    view: np.ndarray
    tensor: np.ndarray  # (1, C, *spatial) float32, as the model's contract prepares it
    source: int = 0  # which file it came from (a photo gives several face chips)


@dataclass(frozen=True)
class Patch:
    item: int  # index into the items
    label: str
    position: tuple[int, ...]  # the unit's position in the layer (row, column)
    value: float
    box: tuple[tuple[float, float], ...]  # input pixels [start, stop) per spatial axis (may leave the image)

    def to_json(self) -> dict:
        (y0, y1), (x0, x1) = self.box[-2:] if len(self.box) >= 2 else ((0, 1), self.box[0])
        return {"item": self.item, "image": self.label, "position": list(self.position), "value": round(self.value, 6),
                "box": [x0, y0, x1, y1]}


@dataclass
class UnitTop:
    unit: int
    patches: list[Patch] = field(default_factory=list)


def parse_units(text: str, channels: int | None = None) -> list[int]:
    """``"0-15"``, ``"3,7,9"``, ``"0-3,8"`` -> unit indices, checked against ``channels``."""
    units: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            low, _, high = part.partition("-")
            first, last = int(low), int(high) if high else int(low)
            if first < 0 or last < first:
                raise ValueError
            units.extend(range(first, last + 1))
    except ValueError:
        raise BadInputError(f"--units {text!r}: expected indices or ranges such as 0-15 or 0,4,9") from None
    if not units:
        raise BadInputError(f"--units {text!r}: no units")
    if channels is not None and max(units) >= channels:
        raise BadInputError(f"--units {text!r}: the layer has {channels} units (0-{channels - 1})")
    return list(dict.fromkeys(units))


def valid_positions(rf: Field, layer_shape: tuple[int, ...], input_shape: tuple[int, ...]) -> np.ndarray:
    """Boolean mask over the layer's positions whose field lies inside the input (where the field fits
    in it; for a larger field, whose field centre does): a unit at the border mostly sees padding."""
    axes = []
    for o, j, r, n, length in zip(rf.offset, rf.stride, rf.size, layer_shape, input_shape):
        start = o + j * np.arange(n)
        ok = (start >= 0) & (start + r <= length) if r <= length else (start + r / 2 >= 0) & (start + r / 2 < length)
        axes.append(ok if ok.any() else np.ones(n, bool))
    mask = axes[0]
    for ok in axes[1:]:
        mask = mask[..., None] & ok
    return mask


def _peaks(act: np.ndarray, mask: np.ndarray, rf: Field, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, ``count`` strongest valid positions, each further than half a field from those before:
    values (count, C) and positions (count, C, ndim)."""
    flat = np.where(mask.reshape(-1)[None], act.reshape(act.shape[0], -1), -np.inf)
    grids = np.indices(act.shape[1:]).reshape(len(act.shape) - 1, -1)  # (ndim, positions)
    radius = [max(r / 2 / j, 0.5) for r, j in zip(rf.size, rf.stride)]
    values, places = [], []
    for _ in range(count):
        best = np.argmax(flat, axis=1)
        values.append(flat[np.arange(len(flat)), best])
        places.append(grids[:, best].T)
        near = np.ones(flat.shape, bool)
        for axis, r in enumerate(radius):
            near &= np.abs(grids[axis][None] - grids[axis][best][:, None]) < r
        flat[near] = -np.inf
    return np.stack(values), np.stack(places)


def collect(probe: LayerProbe, items: Iterable[Item], total: int, rf: Field, show_progress: bool = True,
            per_input: int = 1):
    """(items, values (N, P, C), positions (N, P, C, ndim), layer shape): per item and unit the ``P =
    per_input`` strongest positions among :func:`valid_positions`. ``total``: the files the items come from."""
    kept, maxima, positions, shape = [], [], [], None
    with Progress(total, f"inspect {probe.layer}", enabled=show_progress) as progress:
        for item in items:
            act = probe(item.tensor)[0]  # (C, *spatial)
            shape = act.shape
            values, places = _peaks(act, valid_positions(rf, act.shape[1:], item.tensor.shape[2:]), rf, per_input)
            maxima.append(values)
            positions.append(places)
            kept.append(item)
            if item.source + 1 > progress.count:
                progress.update(item.source + 1 - progress.count)
        if progress.count < total:
            progress.update(total - progress.count)
    if not kept:
        raise BadInputError("no inputs to inspect (no images, or no faces in them)")
    return kept, np.stack(maxima), np.stack(positions), shape


def top_patches(items: list[Item], maxima: np.ndarray, positions: np.ndarray, rf: Field, units: list[int],
                k: int = TOP_K) -> list[UnitTop]:
    """Per unit, the ``k`` strongest of the candidates :func:`collect` kept (at most ``P`` per item)."""
    n, per_input = maxima.shape[:2]
    out = []
    for unit in units:
        candidates = maxima[:, :, unit].reshape(-1)
        order = [c for c in np.argsort(-candidates, kind="stable") if np.isfinite(candidates[c])][:k]
        patches = []
        for c in order:
            i, p = divmod(int(c), per_input)
            position = tuple(int(v) for v in positions[i, p, unit])
            patches.append(Patch(i, items[i].label, position, float(candidates[c]), rf.box(position)))
        out.append(UnitTop(unit, patches))
    return out


def overlap(a: list[UnitTop], b: list[UnitTop]) -> dict:
    """How far two runs (fp32 and a variant) pick the same patches: per unit, the shared share of top-k."""
    rows = []
    for ua, ub in zip(a, b):
        same_patch = {(p.item, p.position) for p in ua.patches} & {(p.item, p.position) for p in ub.patches}
        same_item = {p.item for p in ua.patches} & {p.item for p in ub.patches}
        rows.append({"unit": ua.unit, "same_patches": len(same_patch), "same_inputs": len(same_item),
                     "of": len(ua.patches)})
    n = sum(r["of"] for r in rows) or 1
    return {"units": rows, "patch_overlap": sum(r["same_patches"] for r in rows) / n,
            "input_overlap": sum(r["same_inputs"] for r in rows) / n}
