"""``TritonFaces``: the in-process face API (embed, faces, verify, identify) over a Triton server.

>>> faces = TritonFaces("127.0.0.1:8000")                 # HTTP; "grpc://127.0.0.1:8001" for gRPC
>>> vectors = faces.embed(chips)                          # (N, 150, 150, 3) uint8 -> (N, 128), model face-embed
>>> found = faces.faces("group.jpg")                      # one call to face-pipeline per photo
>>> faces.verify("a.jpg", "b.jpg").same
>>> faces.identify(gallery, "door.jpg", top_k=3)          # PhotoIdentification, as FaceAnalyzer.identify

The embedder's contract (input size, channel order, mean, scale) and threshold are read from the
served model's ``config.pbtxt`` parameters (written by ``facestyle export-triton`` from the manifest),
and its preprocessing is ``FaceEmbedder``'s own: only the network call differs from in-process, so the
vectors equal the in-process ones. A gallery enrolled in-process can be searched with these
embeddings and the other way round (the model identity is the served artifact's sha256). What is asked
of found faces (verify, identify, the threshold rule) is :class:`FaceApi`'s, shared with the in-process
analyzer; only how faces are found differs (the ``face-pipeline`` model, on the server). tritonclient
(extra ``triton``) is imported when a client is made, never by ``import facestyle``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError, BadInputError, FacestyleError
from ..face.analyzer import Face, FaceAnalyzer, FaceApi, StageClock
from ..face.detector import FaceDetector
from ..face.embedder import FaceEmbedder
from ..face.landmarks import ShapePredictor
from ..images import encode_image
from .remote import contract_backend

PIPELINE_OUTPUTS = ("BOXES", "SCORES", "LANDMARKS", "EMBEDDINGS")


def _split_url(url: str, protocol: str | None) -> tuple[str, str]:
    for scheme in ("http", "grpc"):
        if url.startswith(f"{scheme}://"):
            return url[len(scheme) + 3:].rstrip("/"), protocol or scheme
    return url.rstrip("/"), protocol or "http"


class _Connection:
    """One tritonclient client (HTTP or gRPC) and the calls the face API makes with it."""

    def __init__(self, url: str, protocol: str | None = None, timeout_s: float = 60.0):
        self.url, self.protocol = _split_url(url, protocol)
        if self.protocol not in ("http", "grpc"):
            raise BadInputError(f"protocol {self.protocol!r}: expected http or grpc")
        try:
            if self.protocol == "http":
                import tritonclient.http as module

                self.client = module.InferenceServerClient(self.url, connection_timeout=timeout_s,
                                                           network_timeout=timeout_s, concurrency=16)
            else:
                import tritonclient.grpc as module

                self.client = module.InferenceServerClient(self.url)
        except ImportError as exc:
            raise BackendUnavailableError(f"tritonclient is not installed ({exc}): pip install 'facestyle[triton]'") from None
        self.module = module
        self.timeout_s = timeout_s

    def _failed(self, model: str, exc: Exception) -> FacestyleError:
        """One-line error naming the server and the model; a server that cannot be reached is unavailable."""
        if isinstance(exc, OSError):
            return BackendUnavailableError(f"triton {self.url} ({self.protocol}): cannot connect ({exc.strerror or exc})")
        message = exc.message() if hasattr(exc, "message") else str(exc)
        if "UNAVAILABLE" in str(getattr(exc, "status", lambda: "")()):
            return BackendUnavailableError(f"triton {self.url} ({self.protocol}): cannot connect ({message.splitlines()[0]})")
        return FacestyleError(f"triton {self.url}: {model}: {message}")

    def config(self, model: str) -> dict:
        try:
            if self.protocol == "http":
                return self.client.get_model_config(model)
            return self.client.get_model_config(model, as_json=True)["config"]
        except (OSError, self.module.InferenceServerException) as exc:
            raise self._failed(model, exc) from None

    def parameters(self, model: str) -> dict[str, str]:
        return {k: v["string_value"] for k, v in self.config(model).get("parameters", {}).items()}

    def infer(self, model: str, feed: Mapping[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        inputs = []
        for name, array in feed.items():
            dtype = "BYTES" if array.dtype == object else self.module_dtype(array)
            tensor = self.module.InferInput(name, list(array.shape), dtype)
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        wanted = [self.module.InferRequestedOutput(n) for n in outputs]
        try:
            result = self.client.infer(model, inputs, outputs=wanted)
        except (OSError, self.module.InferenceServerException) as exc:
            raise self._failed(model, exc) from None
        return {n: result.as_numpy(n) for n in outputs}

    @staticmethod
    def module_dtype(array: np.ndarray) -> str:
        from tritonclient.utils import np_to_triton_dtype

        return np_to_triton_dtype(array.dtype)

    def statistics(self, model: str) -> dict:
        try:
            if self.protocol == "http":
                return self.client.get_inference_statistics(model)
            return self.client.get_inference_statistics(model, as_json=True)
        except (OSError, self.module.InferenceServerException) as exc:
            raise self._failed(model, exc) from None

    def close(self) -> None:
        self.client.close()


class TritonFaces(FaceApi):
    """The face pipeline served by Triton: faces, verify and identify as :class:`FaceAnalyzer` gives them,
    and ``embed`` (aligned chips, through the embedder's own preprocessing) on the served ``face-embed``."""

    def __init__(self, url: str, protocol: str | None = None, embed_model: str = "face-embed",
                 pipeline_model: str = "face-pipeline", upsample: int = 0, timeout_s: float = 60.0):
        self.connection = _Connection(url, protocol, timeout_s)
        self.embed_model, self.pipeline_model = embed_model, pipeline_model
        try:
            config = self.connection.config(embed_model)
        except BaseException:
            self.connection.close()
            raise
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        metadata = {k: v for k, v in params.items() if k.startswith("facestyle.")}
        batch = int(config.get("max_batch_size", 0) or 1)
        threshold = params.get("manifest.threshold")
        backend = contract_backend(lambda feed, outs: self.connection.infer(embed_model, feed, outs), metadata,
                                   name=f"triton-{self.connection.protocol}")
        self.embedder = FaceEmbedder(
            backend, max_batch=batch, threshold=None if threshold is None else float(threshold),
            threshold_source=f"triton {embed_model}: {params.get('manifest.threshold_source', 'manifest')}",
            source=f"triton {self.connection.url}/{embed_model}", precision=params.get("manifest.precision", "fp32"),
            sha256=params.get("manifest.artifact_sha256"))
        self.upsample = upsample

    # -- the in-process API ---------------------------------------------------------------
    def embed(self, chips: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) uint8 aligned chips -> (N, 128) float32 (batches of up to the model's max_batch_size)."""
        return self.embedder.embed(chips)

    @staticmethod
    def _encoded(image) -> bytes:
        if isinstance(image, (bytes, bytearray)):
            return bytes(image)
        if isinstance(image, np.ndarray):
            return encode_image(image, "PNG")  # lossless: the server decodes the same pixels
        path = Path(image)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise BadInputError(f"{path}: cannot read ({exc.strerror})") from None

    def faces_batch(self, images, upsample: int | None = None, timings: dict | None = None) -> list[list[Face]]:
        """Every face of every photo: one pipeline call per photo (encoded bytes, decoded by the server).
        ``timings``: a dict to which the milliseconds of the calls are added (stage ``pipeline``)."""
        upsample = self.upsample if upsample is None else upsample
        clock, out = StageClock(timings), []
        for image in images:
            feed = {"IMAGE": np.array([self._encoded(image)], dtype=object),
                    "UPSAMPLE": np.array([upsample], np.int32)}
            try:
                got = self.connection.infer(self.pipeline_model, feed, PIPELINE_OUTPUTS)
            except FacestyleError as exc:
                name = image if isinstance(image, (str, Path)) else "image"
                raise FacestyleError(f"{name}: {exc}") from None
            clock.lap("pipeline")
            out.append([Face(got["BOXES"][i], float(got["SCORES"][i]), got["LANDMARKS"][i], got["EMBEDDINGS"][i])
                        for i in range(len(got["BOXES"]))])
        return out

    def statistics(self, model: str | None = None) -> dict:
        """Triton's inference statistics of one model (``batch_stats``: how many executions had each batch size)."""
        return self.connection.statistics(model or self.embed_model)

    def batch_sizes(self, model: str | None = None) -> dict[int, int]:
        """{batch size: executions} from Triton's statistics."""
        stats = self.statistics(model)["model_stats"][0]
        return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}

    def close(self) -> None:
        self.embedder.close()
        self.connection.close()

    def analyzer(self, landmarks: ShapePredictor, detect_model: str = "face-detect") -> FaceAnalyzer:
        """A :class:`FaceAnalyzer` whose detector and embedder networks run on the server's ``face-detect`` and
        ``face-embed``, their pre- and postprocessing and the landmarks (``landmarks``, numpy) in this process:
        what ``facestyle watch --triton`` tracks with (it detects regions and chooses which faces to embed, so it
        needs the stages apart, not ``face-pipeline``). Closing it closes this client."""
        params = self.connection.parameters(detect_model)
        metadata = {k: v for k, v in params.items() if k.startswith("facestyle.")}
        backend = contract_backend(lambda feed, outs: self.connection.infer(detect_model, feed, outs), metadata,
                                   name=f"triton-{self.connection.protocol}")
        detector = FaceDetector(backend, source=f"triton {self.connection.url}/{detect_model}")
        return _ClosingAnalyzer(detector, landmarks, self.embedder, self.upsample, closing=self)


class _ClosingAnalyzer(FaceAnalyzer):
    """A FaceAnalyzer that closes the Triton client it runs on when it is closed."""

    def __init__(self, *stages, closing: TritonFaces):
        super().__init__(*stages)
        self._client = closing

    def close(self) -> None:
        super().close()
        self._client.connection.close()
