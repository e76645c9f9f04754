"""Triton Python-backend model: runs the ONNX beside it with onnxruntime (``facestyle export-triton --platform python``).

For Triton builds without the onnxruntime backend (such as the one PyTriton bundles). The requests of
one ``execute`` call (formed by Triton's dynamic batcher) are concatenated along the batch axis and run
as one batch, then split back; a request that does not fit gets its own error, the others still run.
"""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils


def _error(message):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        path = Path(args["model_repository"]) / args["model_version"] / params.get("onnx_file", "model.onnx")
        options = ort.SessionOptions()
        threads = int(params.get("intra_op_threads", "0"))
        if threads:
            options.intra_op_num_threads = threads
        self.inference = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.batched = config.get("max_batch_size", 0) > 0
        self.inputs = [i.name for i in self.inference.get_inputs()]
        self.outputs = [o.name for o in self.inference.get_outputs()]

    def _feeds(self, request):
        return {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.inputs}

    def _run(self, feed):
        return dict(zip(self.outputs, self.inference.run(self.outputs, feed)))

    def _respond(self, outputs):
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(n, np.ascontiguousarray(v)) for n, v in outputs.items()])

    def execute(self, requests):
        feeds = []
        for request in requests:
            try:
                feeds.append(self._feeds(request))
            except Exception as exc:  # a request without a declared input
                feeds.append(exc)
        good = [f for f in feeds if not isinstance(f, Exception)]
        shapes = {tuple((n, f[n].shape[1:], f[n].dtype.str) for n in self.inputs) for f in good}
        if self.batched and len(good) > 1 and len(shapes) == 1:
            try:
                merged = self._run({n: np.concatenate([f[n] for f in good]) for n in self.inputs})
                sizes = np.cumsum([len(f[self.inputs[0]]) for f in good])[:-1]
                parts = {n: np.split(v, sizes) for n, v in merged.items()}
                split = iter([{n: parts[n][i] for n in parts} for i in range(len(good))])
                return [_error(str(f)) if isinstance(f, Exception) else self._respond(next(split)) for f in feeds]
            except Exception:
                pass  # run them one by one: only the request at fault fails
        responses = []
        for feed in feeds:
            if isinstance(feed, Exception):
                responses.append(_error(str(feed)))
                continue
            try:
                responses.append(self._respond(self._run(feed)))
            except Exception as exc:
                responses.append(_error(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
        return responses

    def finalize(self):
        self.inference = None
