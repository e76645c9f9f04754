"""``OnnxFromModule``: the one export path every model goes through."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from facestyle.manifest import atomic_write_bytes

from .spec import ModelSpec


def onnx_from_module(module, spec: ModelSpec, example_inputs: tuple, path: str | Path, metadata: dict[str, str]) -> Path:
    """Export ``module`` as a single-file ONNX with the spec's names, dynamic axes and opset.

    ``metadata`` (the contract) goes into ``metadata_props``. The file is written atomically.
    """
    import onnx
    import torch

    dims: dict[str, torch.export.Dim] = {}
    dynamic_shapes = {}
    for tensor in spec.inputs:
        axes = {}
        for axis, dim_name in tensor.dynamic_axes.items():
            axes[axis] = dims.setdefault(dim_name, torch.export.Dim(dim_name, min=1, max=4096))
        dynamic_shapes[tensor.name] = axes
    module = module.eval()
    # The exporter logs about torchvision ops and pytree internals that say nothing about our model.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # two inputs sharing the batch axis (the similarity head): the exporter says it keeps one name for both
        warnings.filterwarnings("ignore", message="# The axis name")
        program = torch.onnx.export(
            module,
            example_inputs,
            input_names=[t.name for t in spec.inputs],
            output_names=[t.name for t in spec.outputs],
            opset_version=spec.opset,
            dynamic_shapes=dynamic_shapes,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    proto = program.model_proto
    del proto.metadata_props[:]
    for key, value in sorted(metadata.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    path = Path(path)
    atomic_write_bytes(path, proto.SerializeToString())
    return path
