"""dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``), read with numpy.

Architecture from dlib's ``examples/dnn_mmod_face_detection_ex.cpp``: a downsampler of three
5x5/2 convs (16, 32, 32 filters), three 5x5/1 convs of 45 filters, each followed by batch norm
(stored as ``bn_con2``, folded into an affine here) and relu, then one 9x9 conv to a score map.
"""

from __future__ import annotations

from pathlib import Path

from .network import Affine, Conv, NetworkWeights, Node, Relu, read_network
from .serialization import DlibReader


def architecture() -> list[Node]:
    nodes: list[Node] = []
    for filters in (16, 32, 32):
        nodes += [Conv(filters, 5, 2, 0), Affine(), Relu()]
    for _ in range(3):
        nodes += [Conv(45, 5, 1, 2), Affine(), Relu()]
    return nodes + [Conv(1, 9, 1, 4)]


def cell_mapping(nodes: list[Node]) -> tuple[int, int]:
    """(stride, offset) such that score cell c looks at tensor point stride*c + offset.

    Each conv maps an output point p to the input point p*stride + (size-1)/2 - padding, as dlib's
    ``input_tensor_to_output_tensor`` does; composing them gives 8c + 14 for this network.
    """
    stride, offset = 1, 0
    for node in reversed([n for n in nodes if isinstance(n, Conv)]):
        offset = offset * node.stride + (node.size - 1) // 2 - node.padding
        stride *= node.stride
    return stride, offset


def _read_box_overlap(r: DlibReader, what: str) -> dict:
    return {"iou_thresh": r.float(what + " iou"), "percent_covered_thresh": r.float(what + " covered")}


def _read_loss(r: DlibReader) -> dict:
    r.expect_string("loss_mmod_")
    start = r.offset
    version = r.int("mmod_options version")
    if not 1 <= version <= 4:
        raise r.error(f"mmod_options version {version}, expected 1 to 4", start)
    if version == 1:
        windows = [{"width": r.int("window width"), "height": r.int("window height"), "label": ""}]
    else:
        windows = []
        for _ in range(r.int("detector window count")):
            window_version = r.int("detector window version")
            window = {"width": r.int("window width"), "height": r.int("window height"), "label": ""}
            if window_version == 2:
                window["label"] = r.string("window label")
            windows.append(window)
    options = {
        "detector_windows": windows,
        "loss_per_false_alarm": r.float("loss per false alarm"),
        "loss_per_missed_target": r.float("loss per missed target"),
        "truth_match_iou_threshold": r.float("truth match iou"),
        "overlaps_nms": _read_box_overlap(r, "nms overlap"),
        "overlaps_ignore": _read_box_overlap(r, "ignore overlap"),
    }
    if version >= 3:
        options["assume_image_pyramid"] = r.byte("assume_image_pyramid")
    if version >= 4:
        options["use_bounding_box_regression"] = r.bool("use bbr")
        options["bbr_lambda"] = r.float("bbr lambda")
    if len(windows) != 1:
        raise r.error(f"{len(windows)} detector windows; this port handles dlib's single-window face detector")
    return options


def _read_input(r: DlibReader) -> dict:
    name = r.expect_string("input_rgb_image_pyramid", "input_rgb_image_pyramid2")
    mean = tuple(r.float("input channel mean") for _ in range(3))
    padding, outer = (r.int("pyramid padding"), r.int("pyramid outer padding")) if name.endswith("2") else (10, 11)
    return {"mean_rgb": mean, "pyramid_padding": padding, "pyramid_outer_padding": outer, "pyramid_down": 6}


def read_detector_net(path: str | Path) -> NetworkWeights:
    return read_network(path, architecture(), _read_loss, _read_input)
