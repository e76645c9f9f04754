"""The float16 variant: the graph in float16, normalisations and reductions kept in float32, inputs
and outputs float32 so callers feed and read exactly what they did before."""

from __future__ import annotations

import warnings
from pathlib import Path

from facestyle.errors import MissingDependencyError

from .artifacts import load_onnx, save_checked, source_metadata, with_metadata

# Kept in float32 by the fp16 conversion: statistics over many values lose too much in float16
# (sums overflow past 65504, means and norms lose their low bits).
KEEP_FP32_OPS = (
    "InstanceNormalization", "LayerNormalization", "GroupNormalization", "BatchNormalization",
    "LpNormalization", "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp",
    "Softmax", "LogSoftmax", "Pow", "Sqrt", "Reciprocal",
)


def fp16_from_onnx(src: str | Path, dst: str | Path, keep_fp32_ops: tuple[str, ...] = KEEP_FP32_OPS) -> Path:
    """``src`` converted to float16, ``keep_fp32_ops`` and the model's inputs and outputs in float32."""
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise MissingDependencyError("fp16 conversion needs onnxconverter-common: pip install 'facestyle[export]'") from None

    model = load_onnx(Path(src))
    metadata = source_metadata(model)
    output_types = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    blocked = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops))
    with warnings.catch_warnings():
        # Weights under 1e-7 are flushed to 1e-7 (float16's subnormal range): one warning per weight,
        # hundreds of them; their effect is what the measured cosine drift shows.
        warnings.filterwarnings("ignore", message=r"the float32 number .* will be truncated", category=UserWarning)
        converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=blocked)
    restore_output_types(converted, output_types)
    return save_checked(with_metadata(converted, metadata, "fp16"), Path(dst))


def restore_output_types(model, source_types: dict[str, int]) -> None:
    """onnxconverter-common 1.16 leaves an output float16 when the op producing it is blocked (e.g. a
    final Softmax): its cast back to float16 becomes the output. Outputs keep their source types."""
    from onnx import helper

    producers = {out: node for node in model.graph.node for out in node.output}
    for output in model.graph.output:
        wanted = source_types.get(output.name)
        if wanted is None or output.type.tensor_type.elem_type == wanted:
            continue
        producer = producers.get(output.name)
        if producer is not None and producer.op_type == "Cast":
            for attribute in producer.attribute:  # the cast into float16 now casts into the source type
                if attribute.name == "to":
                    attribute.i = wanted
        else:
            inner = output.name + "_fp16"
            for node in model.graph.node:
                node.output[:] = [inner if o == output.name else o for o in node.output]
                node.input[:] = [inner if i == output.name else i for i in node.input]
            model.graph.node.append(helper.make_node("Cast", [inner], [output.name], to=wanted, name=inner + "_to_output"))
        output.type.tensor_type.elem_type = wanted
        stale = [v for v in model.graph.value_info if v.name == output.name]
        for v in stale:
            model.graph.value_info.remove(v)
