"""Triton Python-backend pipeline model: one encoded photo in -> boxes, scores, landmarks, embeddings out.

The detector's and the embedder's networks run as the repository's own models, called through BLS
(business logic scripting), so Triton batches and places them (GPU instances, TensorRT plans) as it
does any request. Everything around them is facestyle's runtime code, unchanged: the image pyramid
and box decoding (``FaceDetector``), the 5-point landmarks (``ShapePredictor``, numpy), dlib's face
chip alignment and the embedder's preprocessing, so a photo gives the boxes and embeddings that
``facestyle embed`` gives. ``facestyle export-triton`` copies the runtime modules this file imports into
``facestyle/`` beside it, and they come first on ``sys.path``: Triton's Python needs numpy and Pillow only, and
runs the runtime the repository was exported with even where another facestyle is installed.
"""
# ruff: noqa: E402 (the imports below the sys.path line are the copied modules)

import json
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if (_HERE / "facestyle").is_dir():  # the repository's own copy (export-triton), before any installed one
    sys.path.insert(0, str(_HERE))

import numpy as np
import triton_python_backend_utils as pb_utils

from facestyle.errors import FacestyleError
from facestyle.face.analyzer import FaceAnalyzer
from facestyle.face.detector import FaceDetector
from facestyle.face.embedder import FaceEmbedder
from facestyle.face.landmarks import ShapePredictor
from facestyle.images import load_image
from facestyle.triton.remote import contract_backend


def _bls(model_name):
    def call(feed, outputs):
        request = pb_utils.InferenceRequest(
            model_name=model_name, requested_output_names=list(outputs),
            inputs=[pb_utils.Tensor(name, np.ascontiguousarray(value)) for name, value in feed.items()])
        response = request.exec()
        if response.has_error():
            raise FacestyleError(f"{model_name}: {response.error().message()}")
        return {name: pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in outputs}

    return call


def _error(message):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        folder = Path(args["model_repository"]) / args["model_version"]
        contracts = json.loads((folder / params["contracts_file"]).read_text())
        detector = FaceDetector(contract_backend(_bls(params["detector_model"]), contracts["face-detect"], name="bls"),
                                source=params["detector_model"])
        threshold = contracts.get("threshold")
        embedder = FaceEmbedder(contract_backend(_bls(params["embedder_model"]), contracts["face-embed"], name="bls"),
                                max_batch=int(params.get("embed_batch", "32")), threshold=threshold,
                                source=params["embedder_model"])
        landmarks = ShapePredictor.from_npz(folder / params["landmarks_file"])
        self.analyzer = FaceAnalyzer(detector, landmarks, embedder, upsample=int(params.get("upsample", "0")))

    def _one(self, request):
        data = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy().reshape(-1)
        if len(data) != 1:
            raise FacestyleError(f"IMAGE: expected one encoded image per request, got {len(data)}")
        up = pb_utils.get_input_tensor_by_name(request, "UPSAMPLE")
        upsample = None if up is None else int(up.as_numpy().reshape(-1)[0])
        raw = data[0]
        faces = self.analyzer.faces(load_image(bytes(raw) if not isinstance(raw, bytes) else raw), upsample)
        dim = 128 if not faces else len(faces[0].embedding)
        outputs = {
            "BOXES": np.array([f.box for f in faces], np.int64).reshape(-1, 4),
            "SCORES": np.array([f.score for f in faces], np.float32).reshape(-1),
            "LANDMARKS": np.array([f.landmarks for f in faces], np.int64).reshape(-1, 5, 2),
            "EMBEDDINGS": np.array([f.embedding for f in faces], np.float32).reshape(-1, dim),
        }
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(k, v) for k, v in outputs.items()])

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(self._one(request))
            except FacestyleError as exc:
                responses.append(_error(str(exc)))
            except Exception as exc:
                responses.append(_error(f"{type(exc).__name__}: {exc}"))
        return responses

    def finalize(self):
        self.analyzer.close()
