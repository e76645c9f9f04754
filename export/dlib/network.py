"""Reading a dlib DNN file (dlib/dnn/core.h) against an architecture written in code, numpy only.

A dlib network file is ``add_loss_layer`` (version, loss details, subnetwork). Every wrapper writes
its version and then its subnetwork, so the file holds all wrapper versions first (outermost first),
then the input layer, then each layer's details from the input outwards, each followed by the
training state ``add_layer`` keeps. Tag and skip wrappers store no ids: the wiring cannot be read
from the file, so the caller gives the architecture and the reader checks the file against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .serialization import DlibReader


# -- architecture nodes, from the input outwards --------------------------------------------
@dataclass(frozen=True)
class Conv:
    filters: int
    size: int
    stride: int
    padding: int


@dataclass(frozen=True)
class Affine:
    """dlib ``affine``; a file trained with ``bn_con`` stores batch norm, folded here on reading."""


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


@dataclass
class NetworkWeights:
    """The parameters a network file holds, in file order, as numpy arrays."""

    path: str
    sha256: str
    loss: dict
    input: dict
    convs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (weight OIHW, bias)
    affines: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (gamma, beta)
    fc: np.ndarray | None = None  # (outputs, inputs), ready for nn.Linear

    @property
    def parameter_count(self) -> int:
        arrays = [a for pair in self.convs + self.affines for a in pair]
        return int(sum(a.size for a in arrays) + (self.fc.size if self.fc is not None else 0))


# -- layer records -------------------------------------------------------------------------------
def _read_conv(r: DlibReader, node: Conv, w: NetworkWeights) -> None:
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


def _read_batch_norm(r: DlibReader) -> tuple[np.ndarray, np.ndarray]:
    """``bn_con2`` folded as dlib's affine_(bn_) does: g = gamma / sqrt(var + eps), b = beta - g * mean."""
    params = r.tensor("bn params")
    r.alias_tensor("bn gamma")
    r.alias_tensor("bn beta")
    for what in ("means", "invstds", "running_means", "running_variances"):
        tensor = r.tensor("bn " + what)
        if what == "running_means":
            running_mean = tensor.reshape(-1)
        elif what == "running_variances":
            running_var = tensor.reshape(-1)
    r.int("bn num_updates")
    r.int("bn running_stats_window_size")
    for _ in range(4):
        r.float("bn multiplier")
    eps = np.float32(r.float("bn eps"))
    n = running_mean.size
    if params.size != 2 * n or running_var.size != n:
        raise r.error(f"batch norm params hold {params.size} values for {n} channels")
    flat = params.reshape(-1)
    gamma = flat[:n] / np.sqrt(running_var + eps)
    return gamma.astype(np.float32), (flat[n:] - gamma * running_mean).astype(np.float32)


def _read_affine(r: DlibReader, w: NetworkWeights) -> None:
    name = r.expect_string("affine_", "affine_2", "bn_con2")
    if name == "bn_con2":
        w.affines.append(_read_batch_norm(r))
        return
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


def _read_fc(r: DlibReader, node: Fc, w: NetworkWeights) -> None:
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


def _read_details(r: DlibReader, node: Node, w: NetworkWeights) -> None:
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


def _read_wrapper_versions(r: DlibReader, nodes: list[Node]) -> int:
    """Check every wrapper's version, outermost first; returns the input-level add_layer's version."""
    input_layer_version = 0
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
    return input_layer_version


def read_network(
    path: str | Path,
    nodes: list[Node],
    read_loss: Callable[[DlibReader], dict],
    read_input: Callable[[DlibReader], dict],
) -> NetworkWeights:
    """Read a whole network file, checking it against ``nodes`` (input and loss excluded)."""
    r = DlibReader.from_file(path)
    r.expect_int(1, "add_loss_layer version")
    loss = read_loss(r)
    input_layer_version = _read_wrapper_versions(r, nodes)
    w = NetworkWeights(path=str(path), sha256=hashlib.sha256(r.data).hexdigest(), loss=loss, input=read_input(r))
    for i, node in enumerate(nodes):
        if isinstance(node, (Tag, Skip)):
            continue
        _read_details(r, node, w)
        _read_layer_state(r)
        if i == 0 and input_layer_version == 3:
            r.int("sample_expansion_factor")
    r.expect_end()
    return w
