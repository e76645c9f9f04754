"""Recipes of dlib's two networks: the 128-d face embedding ResNet and the MMOD CNN face detector."""

from __future__ import annotations

from pathlib import Path

from facestyle.contract import DetectorContract, EmbeddingContract

from ..dlib.files import DETECTOR_MODEL, RECOGNITION_MODEL
from ..spec import FACE_DETECT, FACE_EMBED
from .base import OnnxRecipe, Prepared, normalise


def prepare_face_embed(source: Path, source_sha: str) -> Prepared:
    import torch

    from ..dlib.recognition import read_recognition_net
    from ..models.face_embedder import module_from_dlib
    from ..sample_inputs import natural_chips

    weights = read_recognition_net(source)
    spec = FACE_EMBED
    contract = EmbeddingContract(
        model=spec.name,
        input_name=spec.inputs[0].name,
        output_name=spec.outputs[0].name,
        input_size=weights.input["size"],
        layout="NCHW",
        channel_order="RGB",
        channel_mean=tuple(round(m, 6) for m in weights.input["mean_rgb"]),
        scale=1.0 / 256.0,
        output_normalized=False,
        distance="euclidean",
        threshold=round(weights.loss["distance_threshold"], 6),
        source_sha256=source_sha,
    )
    chips = normalise(natural_chips(8), contract.channel_mean, contract.scale)
    return Prepared(
        module=module_from_dlib(weights),
        contract=contract,
        example_inputs=(torch.from_numpy(chips[:3]),),
        feeds=[{"chips": chips[:1]}, {"chips": chips[1:8]}],
        feeds_description="natural photo crops from scikit-image data (astronaut face first), batch 1 and 7",
        manifest_extra={
            "threshold": contract.threshold,
            "threshold_source": "dlib's loss_metric distance threshold (Euclidean, raw vectors)",
            "parameters": weights.parameter_count,
        },
    )


def prepare_face_detect(source: Path, source_sha: str) -> Prepared:
    import torch

    from ..dlib.detector import architecture, cell_mapping, read_detector_net
    from ..models.face_detector import module_from_dlib
    from ..sample_inputs import natural_images

    weights = read_detector_net(source)
    spec = FACE_DETECT
    window = weights.loss["detector_windows"][0]
    stride, offset = cell_mapping(architecture())
    contract = DetectorContract(
        model=spec.name,
        input_name=spec.inputs[0].name,
        output_name=spec.outputs[0].name,
        layout="NCHW",
        channel_order="RGB",
        channel_mean=tuple(round(m, 6) for m in weights.input["mean_rgb"]),
        scale=1.0 / 256.0,
        pyramid_downsample=weights.input["pyramid_down"],
        pyramid_padding=weights.input["pyramid_padding"],
        pyramid_outer_padding=weights.input["pyramid_outer_padding"],
        window=(window["width"], window["height"]),
        cell_stride=stride,
        cell_offset=offset,
        score_threshold=0.0,
        nms_iou=weights.loss["overlaps_nms"]["iou_thresh"],
        nms_covered=weights.loss["overlaps_nms"]["percent_covered_thresh"],
        source_sha256=source_sha,
    )
    sizes = [(240, 320), (333, 517), (97, 131)]
    images = [normalise(i[None], contract.channel_mean, contract.scale) for i in natural_images(sizes)]
    return Prepared(
        module=module_from_dlib(weights),
        contract=contract,
        example_inputs=(torch.from_numpy(images[0]),),
        feeds=[{"image": x} for x in images],
        feeds_description="natural photos from scikit-image data at 240x320, 333x517 and 97x131",
        manifest_extra={"parameters": weights.parameter_count},
    )


def embed_recipes() -> dict[str, OnnxRecipe]:
    return {FACE_EMBED.name: OnnxRecipe("face-embed", FACE_EMBED, RECOGNITION_MODEL, prepare_face_embed,
                                        source_option="recognition_model")}


def detect_recipes() -> dict[str, OnnxRecipe]:
    return {FACE_DETECT.name: OnnxRecipe("face-detect", FACE_DETECT, DETECTOR_MODEL, prepare_face_detect,
                                         source_option="detector_model")}
