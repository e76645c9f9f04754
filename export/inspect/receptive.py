"""Receptive fields from an ONNX graph: which input pixels each unit of each tensor looks at.

Walked from the image tensor in graph order, per spatial axis (1-D, 2-D and 3-D alike), with the
usual recurrence (Araujo et al., "Computing receptive fields of convolutional neural networks",
Distill 2019): a kernel k with dilation d (k_eff = d (k - 1) + 1), stride s and leading padding p turn
(size r, stride j, offset o) into (r + (k_eff - 1) j, j s, o - p j). Unit ``i`` of a tensor then sees
input pixels ``[o + i j, o + i j + r)``; ``o`` is negative where the padding is in the field.

Elementwise ops pass a field through; ops with several spatial inputs (a residual Add, a channel
Concat) take the union. Constant Pad and Slice shift it, nearest Resize divides its stride. A field is
``exact=False`` where the graph made that a guess (a Pad or Slice whose amounts are computed at run
time, InstanceNormalization's whole-image statistics, a non-nearest Resize). Global pooling, Flatten,
Gemm and anything else the walk does not know end the field: such tensors have no entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facestyle.errors import BadInputError

KERNEL_OPS = ("Conv", "MaxPool", "AveragePool", "LpPool")
ELEMENTWISE_OPS = frozenset((
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Clip", "Elu", "Selu", "HardSigmoid", "HardSwish", "Softplus",
    "Erf", "Gelu", "Mul", "Add", "Sub", "Div", "Neg", "Abs", "Sqrt", "Pow", "Exp", "Log", "Max", "Min", "Sum",
    "Identity", "Cast", "Dropout", "BatchNormalization", "QuantizeLinear", "DequantizeLinear",
))
WHOLE_IMAGE_OPS = frozenset(("InstanceNormalization", "LRN"))  # local field, statistics over the whole image
LAYER_OPS = frozenset(("Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Clip", "Elu", "Selu", "MaxPool", "AveragePool"))


@dataclass(frozen=True)
class Field:
    size: tuple[float, ...]  # input pixels per spatial axis
    stride: tuple[float, ...]  # input pixels between neighbouring units
    offset: tuple[float, ...]  # first input pixel of unit 0 (negative: padding inside the field)
    exact: bool = True

    def box(self, index: tuple[int, ...]) -> tuple[tuple[float, float], ...]:
        """Per spatial axis, the input pixel range ``[start, stop)`` unit ``index`` sees."""
        return tuple((o + i * j, o + i * j + r) for o, i, j, r in zip(self.offset, index, self.stride, self.size))

    def describe(self) -> str:
        size = "x".join(f"{v:g}" for v in self.size)
        stride = "x".join(f"{v:g}" for v in self.stride)
        return f"{'' if self.exact else '~'}{size} px, stride {stride}"


def _attributes(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class _Constants:
    """Values of initializers and Constant nodes, for Pad/Slice/Resize amounts."""

    def __init__(self, graph):
        from onnx import numpy_helper

        self.values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                value = _attributes(node).get("value")
                if value is not None:
                    self.values[node.output[0]] = numpy_helper.to_array(value)

    def get(self, node, index: int):
        if len(node.input) <= index or not node.input[index]:
            return None
        return self.values.get(node.input[index])


def _kernel(node, weights: _Constants, rank: int) -> tuple[list[int], list[int], list[int], list[int], bool]:
    attrs = _attributes(node)
    kernel = attrs.get("kernel_shape")
    if kernel is None:
        weight = weights.get(node, 1)
        if weight is None:
            raise BadInputError(f"node {node.name!r}: a {node.op_type} without kernel_shape or a constant weight")
        kernel = list(weight.shape[2:])
    kernel = list(kernel)
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    pads = list(attrs.get("pads", [0] * (2 * rank)))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    exact = True
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):  # the split depends on the input size: centred, a guess
        pads = [(d * (k - 1)) // 2 for k, d in zip(kernel, dilations)] * 2
        exact = False
    return kernel, strides, dilations, pads[:rank], exact


def _union(fields: list[Field]) -> Field:
    if len(fields) == 1:
        return fields[0]
    stride = tuple(max(f.stride[a] for f in fields) for a in range(len(fields[0].stride)))
    start = tuple(min(f.offset[a] for f in fields) for a in range(len(stride)))
    stop = tuple(max(f.offset[a] + f.size[a] for f in fields) for a in range(len(stride)))
    exact = all(f.exact for f in fields) and all(f.stride == fields[0].stride for f in fields)
    return Field(tuple(b - a for a, b in zip(start, stop)), stride, start, exact)


def _spatial_amounts(values, rank: int, tensor_rank: int) -> list[float] | None:
    """The spatial part of a per-axis amount vector (Slice starts, Resize scales) of a rank-N tensor."""
    if values is None or len(values) != tensor_rank:
        return None
    return [float(v) for v in values[tensor_rank - rank:]]


def _step(node, inputs: list[Field], constants: _Constants, rank: int) -> Field | None:
    op = node.op_type
    field = _union(inputs)
    if op in ELEMENTWISE_OPS:
        return field
    if op in WHOLE_IMAGE_OPS:
        return Field(field.size, field.stride, field.offset, exact=False)
    if op == "Concat":
        axis = _attributes(node).get("axis", 1)
        return field if axis in (1, -(rank + 1)) else None
    if op in KERNEL_OPS:
        kernel, strides, dilations, pads, exact = _kernel(node, constants, rank)
        if len(kernel) != rank:
            return None
        size = tuple(r + (d * (k - 1)) * j for r, k, d, j in zip(field.size, kernel, dilations, field.stride))
        offset = tuple(o - p * j for o, p, j in zip(field.offset, pads, field.stride))
        stride = tuple(j * s for j, s in zip(field.stride, strides))
        return Field(size, stride, offset, field.exact and exact)
    if op == "Pad":
        pads = constants.get(node, 1)
        if pads is None and "pads" in _attributes(node):  # opset < 11
            pads = np.asarray(_attributes(node)["pads"])
        if pads is None or constants.get(node, 3) is not None:  # amounts computed at run time, or an axes subset
            return Field(field.size, field.stride, field.offset, exact=False)
        begin = [float(p) for p in pads[: len(pads) // 2][-rank:]]
        return Field(field.size, field.stride, tuple(o - p * j for o, p, j in zip(field.offset, begin, field.stride)), field.exact)
    if op == "Slice":
        starts, axes = constants.get(node, 1), constants.get(node, 3)
        if starts is None:
            return Field(field.size, field.stride, field.offset, exact=False)
        shift = [0.0] * rank
        for k, start in enumerate(starts):
            axis = int(axes[k]) if axes is not None else k
            if axis < 0:
                axis += rank + 2
            if axis >= 2:
                if start < 0:  # from the end: depends on the size
                    return Field(field.size, field.stride, field.offset, exact=False)
                shift[axis - 2] = float(start)
        return Field(field.size, field.stride, tuple(o + s * j for o, s, j in zip(field.offset, shift, field.stride)), field.exact)
    if op in ("Resize", "Upsample"):
        scales = _spatial_amounts(constants.get(node, 2 if op == "Resize" else 1), rank, rank + 2)
        if scales is None:
            return None
        mode = _attributes(node).get("mode", b"nearest")
        nearest = (mode.decode() if isinstance(mode, bytes) else mode) == "nearest"
        return Field(field.size, tuple(j / s for j, s in zip(field.stride, scales)), field.offset, field.exact and nearest)
    return None  # global pooling, Flatten, Gemm, Reshape, Transpose, ...: no spatial field


def receptive_fields(model, image_tensor: str | None = None, spatial_rank: int | None = None) -> dict[str, Field]:
    """{tensor name: Field} for every tensor the walk can follow from ``image_tensor`` (default: the
    graph's first input), in graph order. ``spatial_rank``: 1, 2 or 3 (default: the input's rank - 2)."""
    graph = model.graph
    image_tensor = image_tensor or graph.input[0].name
    if spatial_rank is None:
        inputs = {i.name: i for i in graph.input}
        if image_tensor not in inputs:
            raise BadInputError(f"{image_tensor!r} is not a graph input: give spatial_rank")
        spatial_rank = len(inputs[image_tensor].type.tensor_type.shape.dim) - 2
    if spatial_rank < 1:
        raise BadInputError(f"{image_tensor!r}: a tensor with no spatial axes (rank {spatial_rank + 2})")
    constants = _Constants(graph)
    fields = {image_tensor: Field((1.0,) * spatial_rank, (1.0,) * spatial_rank, (0.0,) * spatial_rank)}
    for node in graph.node:
        if node.op_type in ("Shape", "Size", "Constant"):
            continue
        inputs = [fields[name] for name in node.input if name in fields]
        if not inputs:
            continue
        out = _step(node, inputs, constants, spatial_rank)
        if out is not None:
            for name in node.output[:1]:
                fields[name] = out
    return fields


def layer_names(model, fields: dict[str, Field]) -> list[str]:
    """The tensors worth inspecting, in graph order: outputs of activations and pools, and graph outputs,
    that have a receptive field."""
    outputs = {o.name for o in model.graph.output}
    names = [n.output[0] for n in model.graph.node if n.output and n.output[0] in fields
             and (n.op_type in LAYER_OPS or n.output[0] in outputs)]
    return list(dict.fromkeys(names))
