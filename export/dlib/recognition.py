"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``), read with numpy.

The file does not store the residual wiring (tag/skip layers keep no ids), so the network is
written here in code, following dlib's ``examples/dnn_face_recognition_ex.cpp``, and the reader
checks every wrapper version and layer record of the file against it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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


# -- the architecture as dlib nests it --------------------------------------------------
@dataclass(frozen=True)
class Conv:
    filters: int
    size: int
    stride: int
    padding: int


@dataclass(frozen=True)
class Affine:
    pass


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class MaxPool:
    size: int
    stride: int


@dataclass(frozen=True)
class AvgPool:
    size: int  # 0 = pool everything
    stride: int


@dataclass(frozen=True)
class AddPrev:
    tag: int


@dataclass(frozen=True)
class Fc:
    outputs: int


@dataclass(frozen=True)
class Tag:
    id: int


@dataclass(frozen=True)
class Skip:
    id: int


Node = Conv | Affine | Relu | MaxPool | AvgPool | AddPrev | Fc | Tag | Skip


def _block(filters: int, stride: int) -> list[Node]:
    # dlib: block = affine<con<N,3,3,1,1,relu<affine<con<N,3,3,s,s,SUBNET>>>>>
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


# -- reading ------------------------------------------------------------------------------
@dataclass
class RecognitionWeights:
    """Everything the file holds that inference needs, as numpy arrays."""

    path: str
    sha256: str
    input_mean_rgb: tuple[float, float, float]
    input_size: tuple[int, int]
    loss_margin: float
    distance_threshold: float
    convs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (weight OIHW, bias)
    affines: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (gamma, beta)
    fc: np.ndarray | None = None  # (outputs, inputs), ready for nn.Linear

    @property
    def parameter_count(self) -> int:
        arrays = [a for pair in self.convs + self.affines for a in pair] + [self.fc]
        return int(sum(a.size for a in arrays))


def _read_conv(r: DlibReader, node: Conv, w: RecognitionWeights) -> None:
    name = r.expect_string("con_4", "con_5", "con_6")
    params = r.tensor("con params")
    start = r.offset
    got = [r.int("con hyper-parameter") for _ in range(7)]
    want = [node.filters, node.size, node.size, node.stride, node.stride, node.padding, node.padding]
    if got != want:
        raise r.error(f"conv (filters, nr, nc, stride_y, stride_x, pad_y, pad_x) = {got}, architecture says {want}", start)
    wshape, bshape = r.alias_tensor("con filters"), r.alias_tensor("con biases")
    for _ in range(4):
        r.float("con multiplier")
    if name != "con_4" and not r.bool("con use_bias"):
        raise r.error("conv without bias, the architecture has biases on every conv")
    if name == "con_6" and r.bool("con use_relu"):
        raise r.error("conv with a fused relu, which this architecture does not use")
    nw, nb = int(np.prod(wshape)), int(np.prod(bshape))
    if params.size != nw + nb or nb != node.filters:
        raise r.error(f"conv params hold {params.size} values, shapes {wshape} + {bshape} need {nw + nb}")
    flat = params.reshape(-1)
    w.convs.append((flat[:nw].reshape(wshape).copy(), flat[nw:].copy()))


def _read_affine(r: DlibReader, w: RecognitionWeights) -> None:
    name = r.expect_string("affine_", "affine_2")
    params = r.tensor("affine params")
    gshape, bshape = r.alias_tensor("affine gamma"), r.alias_tensor("affine beta")
    start = r.offset
    mode = r.int("affine mode")
    if mode != 0:
        raise r.error(f"affine mode {mode}, expected 0 (per channel after a conv)", start)
    if name == "affine_2" and r.bool("affine disabled"):
        raise r.error("affine layer is disabled, which this architecture does not use")
    n = int(np.prod(gshape))
    if params.size != 2 * n or int(np.prod(bshape)) != n:
        raise r.error(f"affine params hold {params.size} values, expected 2 x {n}")
    flat = params.reshape(-1)
    w.affines.append((flat[:n].copy(), flat[n:].copy()))


def _read_pool(r: DlibReader, name: str, size: int, stride: int) -> None:
    r.expect_string(name)
    start = r.offset
    got = [r.int("pool hyper-parameter") for _ in range(6)]
    want = [size, size, stride, stride, 0, 0]
    if got != want:
        raise r.error(f"{name} (nr, nc, stride_y, stride_x, pad_y, pad_x) = {got}, architecture says {want}", start)


def _read_fc(r: DlibReader, node: Fc, w: RecognitionWeights) -> None:
    name = r.expect_string("fc_2", "fc_3")
    outputs = r.expect_int(node.outputs, "fc num_outputs")
    inputs = r.int("fc num_inputs")
    params = r.tensor("fc params")
    r.alias_tensor("fc weights")
    r.alias_tensor("fc biases")
    r.expect_int(1, "fc bias_mode (1 = no bias)")
    for _ in range(4):
        r.float("fc multiplier")
    if name == "fc_3":
        r.bool("fc use_bias")
    if params.size != inputs * outputs:
        raise r.error(f"fc params hold {params.size} values, expected {inputs} x {outputs}")
    # dlib stores (num_inputs, num_outputs) and computes x @ W.
    w.fc = params.reshape(inputs, outputs).T.copy()


def _read_details(r: DlibReader, node: Node, w: RecognitionWeights) -> None:
    if isinstance(node, Conv):
        _read_conv(r, node, w)
    elif isinstance(node, Affine):
        _read_affine(r, w)
    elif isinstance(node, Relu):
        if r.expect_string("relu_", "relu_2") == "relu_2" and r.bool("relu disabled"):
            raise r.error("relu layer is disabled, which this architecture does not use")
    elif isinstance(node, MaxPool):
        _read_pool(r, "max_pool_2", node.size, node.stride)
    elif isinstance(node, AvgPool):
        _read_pool(r, "avg_pool_2", node.size, node.stride)
    elif isinstance(node, AddPrev):
        r.expect_string("add_prev_")
    elif isinstance(node, Fc):
        _read_fc(r, node, w)


def _read_layer_state(r: DlibReader) -> None:
    """The training state each ``add_layer`` stores after its details: 3 bools, 3 tensors."""
    for what in ("this_layer_setup_called", "gradient_input_is_stale", "output_and_gradient_disabled"):
        r.bool(what)
    for what in ("x_grad", "cached_output", "params_grad"):
        r.tensor(what)


def read_recognition_net(path: str | Path) -> RecognitionWeights:
    """Read the whole file, checking it against :func:`architecture`, and return its weights."""
    r = DlibReader.from_file(path)
    nodes = architecture()
    r.expect_int(1, "add_loss_layer version")
    r.expect_string("loss_metric_", "loss_metric_2")
    margin = r.float("loss margin")
    threshold = r.float("loss distance threshold")

    # Wrappers serialize their version, then their subnetwork: all versions come first, outermost first.
    input_layer_version = None
    for i, node in reversed(list(enumerate(nodes))):
        start = r.offset
        version = r.int(f"version of wrapper {i} ({type(node).__name__})")
        if isinstance(node, (Tag, Skip)):
            ok = version == 1
        elif i == 0:
            ok, input_layer_version = version in (2, 3), version
        else:
            ok = version == 2
        if not ok:
            raise r.error(f"wrapper {i} ({type(node).__name__}) has version {version}, not what this architecture stores", start)

    r.expect_string("input_rgb_image_sized")
    mean = tuple(r.float("input channel mean") for _ in range(3))
    size = (r.int("input rows"), r.int("input cols"))
    w = RecognitionWeights(
        path=str(path),
        sha256=hashlib.sha256(r.data).hexdigest(),
        input_mean_rgb=mean,
        input_size=size,
        loss_margin=margin,
        distance_threshold=threshold,
    )
    for i, node in enumerate(nodes):
        if isinstance(node, (Tag, Skip)):
            continue
        _read_details(r, node, w)
        _read_layer_state(r)
        if i == 0 and input_layer_version == 3:
            r.int("sample_expansion_factor")
    r.expect_end()
    return w
