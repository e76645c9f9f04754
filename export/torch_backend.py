"""PyTorch eager behind the runtime's Backend protocol: the reference `facestyle bench` times beside
onnxruntime and TensorRT (backends ``torch-cpu`` / ``torch-cuda``), and the module it runs, made by
the build's own recipe.

It lives on the export side because it needs torch and the build recipes; the bench imports it only
for the torch backends. torch itself is imported on first use, not with this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from facestyle.backends.base import Backend, TensorMeta
from facestyle.errors import BackendUnavailableError
from facestyle.manifest import file_sha256, manifest_path, read_manifest


class TorchBackend(Backend):
    """A PyTorch module run eagerly, with the inputs, outputs and metadata of the ONNX exported from it.

    The runtime classes (FaceEmbedder, FaceDetector, Stylizer) read their contract from the ONNX
    metadata; taking it from the very file built from this module keeps every step around the
    network identical, so only the network's execution differs from the onnxruntime cases.
    """

    name = "torch"

    def __init__(self, module, onnx_path: str | Path, device: str = "cpu"):
        super().__init__()
        self.module, self.model_path, self.device = module, Path(onnx_path), device
        self._reference: dict = {}

    @property
    def provider(self) -> str:
        return f"torch eager ({self.device})"

    def _activate(self) -> None:
        from facestyle.backends.onnxruntime import OnnxRuntimeBackend

        onnx = OnnxRuntimeBackend(self.model_path).activate()
        self._reference = {
            "inputs": list(onnx.input_metadata.values()),
            "outputs": [o.name for o in onnx.inference.get_outputs()],
            "metadata": onnx.metadata,
        }
        onnx.deactivate()
        self.module = self.module.to(self.device).eval()

    def _deactivate(self) -> None:
        self._reference = {}

    def _input_metadata(self) -> list[TensorMeta]:
        return self._reference["inputs"]

    def _metadata(self) -> dict[str, str]:
        return dict(self._reference["metadata"])

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(feed[m.name])).to(self.device) for m in self._reference["inputs"]]
            out = self.module(*args)
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        return {name: o.cpu().numpy() for name, o in zip(self._reference["outputs"], outputs)}


def import_torch():
    """torch, or BackendUnavailableError saying how to install it."""
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError(f"torch is not importable here ({exc}): pip install 'facestyle[export]'") from None
    return torch


def torch_device(gpu: bool) -> str:
    """``"cuda"`` or ``"cpu"``; BackendUnavailableError when a GPU is asked for and torch sees none."""
    torch = import_torch()
    if gpu and not torch.cuda.is_available():
        raise BackendUnavailableError(f"torch {torch.__version__} here sees no CUDA GPU")
    return "cuda" if gpu else "cpu"


def torch_module(model: str, onnx: Path):
    """The PyTorch module ``facestyle build`` exported ``onnx`` from, made by the build's own recipe."""
    from .kinds import export_kind_of_model

    recipe = export_kind_of_model(model).model_recipes().get(model)
    if recipe is None or not hasattr(recipe, "prepare"):
        raise BackendUnavailableError(f"no build recipe for {model} here (only shipped styles and the face models have one)")
    source = recipe.locate(recipe.source_file, None)
    source_sha = file_sha256(source)
    built_from = read_manifest(manifest_path(onnx)).get("source", {}).get("sha256")
    if built_from != source_sha:
        # The engine came from other weights (e.g. `build --recognition-model`): torch would time another model.
        raise BackendUnavailableError(f"{onnx} was built from weights with sha256 {str(built_from)[:12]}, "
                                      f"not from {source} ({source_sha[:12]}) that torch would load")
    return recipe.prepare(source, source_sha).module
