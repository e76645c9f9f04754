"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``), read with numpy.

The architecture is written here following dlib's ``examples/dnn_face_recognition_ex.cpp``;
:func:`read_recognition_net` checks every wrapper version and layer record of the file against it.
"""

from __future__ import annotations

from pathlib import Path

from .network import AddPrev, Affine, AvgPool, Conv, Fc, MaxPool, NetworkWeights, Node, Relu, Skip, Tag, read_network
from .serialization import DlibReader

# (output channels, number of blocks, first block downsamples), from input to output.
STAGES: tuple[tuple[int, int, bool], ...] = (
    (32, 3, False),  # alevel4
    (64, 4, True),  # alevel3
    (128, 3, True),  # alevel2
    (256, 3, True),  # alevel1
    (256, 1, True),  # alevel0
)
EMBEDDING_SIZE = 128


def _block(filters: int, stride: int) -> list[Node]:
    # dlib: block = affine<con<N,3,3,1,1,relu<affine<con<N,3,3,s,s,SUBNET>>>>>; only stride-1 convs pad.
    return [Conv(filters, 3, stride, 0 if stride != 1 else 1), Affine(), Relu(), Conv(filters, 3, 1, 1), Affine()]


def _ares(filters: int) -> list[Node]:
    # relu<add_prev1<block<N,1,tag1<SUBNET>>>>
    return [Tag(1), *_block(filters, 1), AddPrev(1), Relu()]


def _ares_down(filters: int) -> list[Node]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,2,tag1<SUBNET>>>>>>>
    return [Tag(1), *_block(filters, 2), Tag(2), Skip(1), AvgPool(2, 2), AddPrev(2), Relu()]


def architecture() -> list[Node]:
    """Every wrapper of the network from the input outwards (input and loss excluded)."""
    nodes: list[Node] = [Conv(32, 7, 2, 0), Affine(), Relu(), MaxPool(3, 2)]
    for filters, blocks, downsample in STAGES:
        for i in range(blocks):
            nodes += _ares_down(filters) if (downsample and i == 0) else _ares(filters)
    return nodes + [AvgPool(0, 1), Fc(EMBEDDING_SIZE)]  # avg_pool_everything = avg_pool<0,0,1,1>


def _read_loss(r: DlibReader) -> dict:
    r.expect_string("loss_metric_", "loss_metric_2")
    return {"margin": r.float("loss margin"), "distance_threshold": r.float("loss distance threshold")}


def _read_input(r: DlibReader) -> dict:
    r.expect_string("input_rgb_image_sized")
    mean = tuple(r.float("input channel mean") for _ in range(3))
    return {"mean_rgb": mean, "size": (r.int("input rows"), r.int("input cols"))}


def read_recognition_net(path: str | Path) -> NetworkWeights:
    """Read the whole file, checking it against :func:`architecture`, and return its weights."""
    return read_network(path, architecture(), _read_loss, _read_input)
