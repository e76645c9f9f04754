"""onnxruntime backend. Asking for a provider that is not available raises: no silent CPU fallback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError, ModelFormatError
from .base import Backend, TensorMeta

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


def available_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(
        self,
        model_path: str | Path,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        intra_op_threads: int | None = None,
    ):
        super().__init__()
        self.model_path = Path(model_path)
        self.requested_providers = list(providers)
        self.intra_op_threads = intra_op_threads
        self.session = None

    @property
    def provider(self) -> str:
        """The execution provider that actually runs the model."""
        self.activate()
        return self.session.get_providers()[0]

    def _activate(self) -> None:
        import onnxruntime

        missing = [p for p in self.requested_providers if p not in available_providers()]
        if missing:
            raise BackendUnavailableError(
                f"onnxruntime here has no {', '.join(missing)} (available: {', '.join(available_providers())})"
            )
        if not self.model_path.is_file():
            raise ModelFormatError("no such ONNX model; run `facestyle build`", self.model_path)
        options = onnxruntime.SessionOptions()
        if self.intra_op_threads:
            options.intra_op_num_threads = self.intra_op_threads
        try:
            session = onnxruntime.InferenceSession(
                str(self.model_path), options, providers=self.requested_providers
            )
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise ModelFormatError(f"onnxruntime cannot load it: {exc}", self.model_path) from None
        used = session.get_providers()
        if used[0] != self.requested_providers[0]:
            raise BackendUnavailableError(
                f"asked onnxruntime for {self.requested_providers[0]} but it runs {self.model_path} on {used[0]}"
            )
        self.session = session

    def _deactivate(self) -> None:
        self.session = None

    def _input_metadata(self) -> list[TensorMeta]:
        metas = []
        for i in self.session.get_inputs():
            if i.type not in _ORT_TYPES:
                raise ModelFormatError(f"input {i.name!r} has unsupported type {i.type}", self.model_path)
            shape = tuple(d if isinstance(d, int) else None for d in i.shape)
            metas.append(TensorMeta(i.name, np.dtype(_ORT_TYPES[i.type]), shape))
        return metas

    def _metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, dict(feed))))
