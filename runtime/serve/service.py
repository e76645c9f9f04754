"""The runtime behind the HTTP endpoints: models, micro-batchers and gallery, with no web code.

Faces: the analyzer's pipeline, with its embed step swapped for one MicroBatcher: each request decodes,
detects and aligns in its own thread (at most ``workers`` at once: the detector is the CPU's work), then
hands its chips to the batcher, so the chips of concurrent requests are embedded together. Styles: one
worker stylises one photo at a time from a bounded queue. A full queue raises BatcherFullError (HTTP 503
with Retry-After) instead of piling up threads.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..batching import MicroBatcher
from ..errors import BadInputError, FacestyleError, NoFaceError
from ..face.analyzer import EmbedStepInFront
from ..images import encode_image, load_image
from ..kinds import KINDS
from .errors import ConflictError, NotFoundError, OverloadedError, UnavailableError
from .metrics import Metrics

log = logging.getLogger("facestyle.serve")
FACE_KINDS = ("face-detect", "landmarks-5", "face-embed")
GIVEN_IN_REQUEST = "threshold given in the request"


class BatchedEmbedder(EmbedStepInFront):
    """An embed step that sends each chip through a shared MicroBatcher (``submit(chip) -> Future``) and
    waits for its vector; everything else (contract, threshold, identity) is the embedder's behind it."""

    def __init__(self, embedder, submit, timeout_s: float):
        super().__init__(embedder)
        self._submit, self._timeout_s = submit, timeout_s

    def embed(self, chips) -> np.ndarray:
        futures = [self._submit(chip) for chip in chips]
        vectors = [f.result(timeout=self._timeout_s) for f in futures]
        return np.stack(vectors) if vectors else np.zeros((0, 128), np.float32)


@dataclass
class ServeSettings:
    engines: Path | None = None
    gallery: Path | None = None
    precision: str = "fp32"
    backend: str | None = None
    upsample: int = 0
    max_batch: int = 32
    max_delay_ms: float = 5.0
    max_queue: int = 256  # chips waiting for the embedder before requests get 503
    workers: int = 2  # requests detecting faces at once
    stylize_queue: int = 8  # photos waiting for the stylizer before requests get 503
    stylize_max_side: int = 1600
    result_timeout_s: float = 120.0


@dataclass(frozen=True)
class Photo:
    """One uploaded image: its bytes and the name the client gave it (a field or a file name)."""

    data: bytes
    name: str


class Service:
    """Loads what ``facestyle build`` wrote (in the background: ``ready`` says when) and serves it."""

    def __init__(self, settings: ServeSettings, metrics: Metrics | None = None):
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.analyzer = None  # the face pipeline, its embed step the batcher below
        self._embedder = None  # the embedder behind that batcher
        self.gallery = None
        self.stylizers: dict = {}
        self.status: dict[str, dict] = {k: {"state": "loading"} for k in KINDS}
        self.status_gallery: dict | None = None if settings.gallery is None else {"state": "loading"}
        self._loaded = threading.Event()
        self._detect_slots = threading.BoundedSemaphore(max(1, settings.workers))
        self._waiting = {"embed": 0, "stylize": 0}
        self._waiting_lock = threading.Lock()
        self.embed_batcher = MicroBatcher(self._embed_batch, max_batch=settings.max_batch,
                                          max_delay_ms=settings.max_delay_ms, max_queue=settings.max_queue,
                                          when_full="reject", name="embed")
        self.stylize_batcher = MicroBatcher(self._stylize_batch, max_batch=1, max_delay_ms=0,
                                            max_queue=settings.stylize_queue, when_full="reject", name="stylize")
        for name in self._waiting:
            self.metrics.queue_depth.read_from(lambda n=name: self._waiting[n], name)

    # -- loading --------------------------------------------------------------------------------
    def load(self) -> None:
        """Load every built model (face pipeline, styles, gallery); failures are recorded, not raised."""
        try:
            self._load_faces()
            self._load_styles()
        finally:
            self._loaded.set()

    def _load_faces(self) -> None:
        s = self.settings
        try:
            from ..face.analyzer import FaceAnalyzer

            loaded = FaceAnalyzer.from_engines(s.engines, precision=s.precision, upsample=s.upsample, backend=s.backend)
            self._embedder = loaded.embedder  # what the batcher runs
            self.analyzer = loaded.with_embedder(BatchedEmbedder(
                loaded.embedder, lambda chip: self._submit(self.embed_batcher, "embed", chip), s.result_timeout_s))
            for kind in FACE_KINDS:
                self.status[kind] = {"state": "loaded"}
            self.status["face-embed"]["precision"] = self.analyzer.embedder.precision
        except Exception as error:  # a missing or broken artifact: reported by /readyz, the rest still serves
            for kind in FACE_KINDS:
                if self.status[kind]["state"] == "loading":
                    self.status[kind] = {"state": "failed", "error": str(error).splitlines()[0] if str(error) else repr(error)}
            log.error("face models: %s", error)
            return
        if s.gallery is not None:
            try:
                from ..face.gallery import Gallery

                self.gallery = Gallery.open(s.gallery, self.analyzer.embedder.identity)
                self.status_gallery = {"state": "loaded", "path": str(s.gallery)}
            except Exception as error:  # e.g. a gallery of another model: face endpoints still serve
                self.status_gallery = {"state": "failed", "path": str(s.gallery), "error": str(error).splitlines()[0]}
                log.error("gallery %s: %s", s.gallery, error)

    def _load_styles(self) -> None:
        s = self.settings
        try:
            from ..style.stylizer import Stylizer, list_styles

            for style in list_styles(s.engines):
                try:
                    self.stylizers[style["name"]] = Stylizer.from_engines(style["name"], s.engines, backend=s.backend)
                except FacestyleError as error:
                    log.error("style %s: %s", style["name"], error)
            self.status["style"] = {"state": "loaded" if self.stylizers else "absent", "styles": sorted(self.stylizers)}
        except Exception as error:
            self.status["style"] = {"state": "failed", "error": str(error), "styles": sorted(self.stylizers)}
            log.error("styles: %s", error)

    def start_loading(self) -> threading.Thread:
        thread = threading.Thread(target=self.load, name="facestyle-serve-load", daemon=True)
        thread.start()
        return thread

    @property
    def ready(self) -> bool:
        gallery_ok = self.status_gallery is None or self.status_gallery["state"] != "failed"
        return self._loaded.is_set() and (self.analyzer is not None or bool(self.stylizers)) and gallery_ok

    def readiness(self, details: bool = True) -> dict:
        """What /readyz says; without ``details`` (a request without the token) no paths nor error texts."""
        def shown(status: dict | None) -> dict | None:
            return status if details or status is None else {k: v for k, v in status.items() if k not in ("path", "error")}

        return {"ready": self.ready, "models": {k: shown(v) for k, v in self.status.items()},
                "gallery": shown(self.status_gallery)}

    def _face_pipeline(self):
        if self.analyzer is None:
            state = self.status["face-embed"]
            if state["state"] == "loading":
                raise OverloadedError("face models are still loading; retry shortly")
            raise UnavailableError(f"face models are not available here: {state.get('error', 'not built')}")
        return self.analyzer

    def _gallery(self):
        self._face_pipeline()
        if self.gallery is None:
            if self.status_gallery is not None:
                raise UnavailableError(f"gallery {self.settings.gallery} is not available: "
                                      f"{self.status_gallery.get('error', 'still loading')}")
            raise NotFoundError("no gallery on this server (start it with --gallery G.db)", "gallery")
        return self.gallery

    # -- faces ----------------------------------------------------------------------------------
    def _embed_batch(self, chips: list[np.ndarray]) -> np.ndarray:
        with self._waiting_lock:
            self._waiting["embed"] -= len(chips)
        self.metrics.batch_size.observe(len(chips), "embed")
        return self._embedder.embed(np.stack(chips))

    def _submit(self, batcher: MicroBatcher, name: str, item):
        with self._waiting_lock:
            self._waiting[name] += 1
        try:
            return batcher.submit(item)
        except BaseException:
            with self._waiting_lock:
                self._waiting[name] -= 1
            raise

    def faces(self, photo: Photo) -> list:
        """The faces of one photo (box, score, landmarks, embedding); chips embedded through the batcher."""
        analyzer = self._face_pipeline()
        with self._detect_slots:  # only decode, detect and align hold a slot; the batcher is shared by all
            aligned = analyzer.align(photo.data)
        return analyzer.embed_aligned([aligned])[0]

    def _named(self, error: FacestyleError, photo: Photo) -> FacestyleError:
        """The error, its message naming the upload instead of load_image's ``<bytes>``, with ``input`` set."""
        message = str(error)
        if message.startswith("<bytes>"):
            renamed = type(error)(photo.name + message[len("<bytes>"):])
            if type(renamed) is type(error):
                error = renamed
        error.input = photo.name
        return error

    def embed_chips(self, photos: list[Photo]) -> list[dict]:
        """Aligned chips (150x150, dlib's get_face_chip) embedded as they are, like ``embed --aligned``."""
        from ..errors import BadImageError

        analyzer = self._face_pipeline()
        h, w = analyzer.embedder.input_size
        chips = []
        for photo in photos:
            try:
                chip = load_image(photo.data)
            except FacestyleError as error:
                raise self._named(error, photo) from None
            if chip.shape[:2] != (h, w):
                raise self._named(BadImageError(f"{photo.name}: aligned face chip must be {w}x{h} RGB, got "
                                                f"{chip.shape[1]}x{chip.shape[0]}"), photo)
            chips.append(chip)
        vectors = analyzer.embedder.embed(chips)
        return [{"name": p.name, "embedding": [float(v) for v in vector]} for p, vector in zip(photos, vectors)]

    def _faces_named(self, photo: Photo) -> list:
        try:
            return self.faces(photo)
        except FacestyleError as error:
            raise self._named(error, photo) from None

    def embed(self, photos: list[Photo]) -> list[dict]:
        return [{"name": p.name, "faces": [f.to_json() for f in self._faces_named(p)]} for p in photos]

    def verify(self, a: Photo, b: Photo, threshold: float | None = None) -> dict:
        """The largest face of each photo compared, by ``FaceAnalyzer.compare_largest``."""
        current: list[Photo] = []

        def named_faces():
            for photo in (a, b):
                current[:] = [photo]
                yield photo.name, self._faces_named(photo)

        try:
            result = self._face_pipeline().compare_largest(named_faces(), threshold, GIVEN_IN_REQUEST)
        except NoFaceError as error:
            raise self._named(error, current[0]) from None
        boxes = {label: [int(v) for v in face.box] for label, face in zip("ab", result.compared)}
        return {**result.to_json(), "boxes": boxes}

    def enroll(self, name: str, photos: list[Photo], allow_poor: bool = False) -> dict:
        """Enrol ``name`` from the photos that show exactly one face (and are not enrolled under another name);
        the others are reported in place, not guessed."""
        from ..face.gallery import enroll_faces

        gallery = self._gallery()
        if not name.strip():
            raise BadInputError("name: expected a person's name, got an empty one")
        items = [(name, photo.name, photo.data, self._faces_named(photo)) for photo in photos]
        try:
            result = enroll_faces(gallery, items, skip_bad=True, allow_poor=allow_poor)
        except FacestyleError as error:
            error.input = "name"
            raise
        outcomes = [{"name": o.file, "status": o.status, "faces": o.faces,
                     **({"quality": o.quality.to_json()} if o.quality else {}),
                     **({"detail": o.detail} if o.refused else {"box": list(o.box)})} for o in result]
        if len(result.refused) == len(result):
            detail = "; ".join(f"{o['name']}: {o['detail']}" for o in outcomes)
            if all(o.status == "another person" for o in result):
                raise ConflictError(f"{name.strip()}: {detail}; nothing enrolled", "images")
            what = "is good enough to enrol" if any(o.status == "poor quality" for o in result) else "shows exactly one face"
            raise NoFaceError(f"{name.strip()}: no photo {what} ({detail}); nothing enrolled")
        photos_now = dict(gallery.people()).get(name.strip(), 0)
        return {"person": name.strip(), "photos": outcomes, "photos_enrolled": photos_now}

    def identify(self, photo: Photo, top_k: int = 3, threshold: float | None = None) -> dict:
        gallery = self._gallery()
        found = self.analyzer.identify_faces(gallery, self._faces_named(photo), top_k, threshold, GIVEN_IN_REQUEST)
        return found.to_json(timings=False)

    def people(self) -> list[dict]:
        return [{"name": n, "photos": c} for n, c in self._gallery().people()]

    def remove(self, name: str) -> dict:
        gallery = self._gallery()
        if name not in dict(gallery.people()):
            raise NotFoundError(f"{name!r}: nobody of that name is enrolled", "name")
        return {"person": name, "removed_photos": gallery.remove(name)}

    # -- styles ---------------------------------------------------------------------------------
    def styles(self) -> list[dict]:
        from ..style.stylizer import list_styles

        return [{k: v for k, v in s.items() if k != "artifact"} | {"loaded": s["name"] in self.stylizers}
                for s in list_styles(self.settings.engines)]

    def _stylize_batch(self, jobs: list[tuple]) -> list[bytes]:
        with self._waiting_lock:
            self._waiting["stylize"] -= len(jobs)
        self.metrics.batch_size.observe(len(jobs), "stylize")
        out = []
        for stylizer, pixels, strength, max_side, fmt, looks in jobs:
            out.append(encode_image(stylizer.stylize(pixels, strength=strength, max_side=max_side, **looks), fmt))
        return out

    def stylize(self, photo: Photo, style: str, strength: float = 1.0, max_side: int | None = None,
                fmt: str = "JPEG", **looks) -> bytes:
        """``looks``: Stylizer.stylize's stroke_scale, preserve_colour, keep_faces."""
        if not self._loaded.is_set():
            raise OverloadedError("styles are still loading; retry shortly")
        if style not in self.stylizers:
            known = ", ".join(sorted(self.stylizers)) or "none"
            raise NotFoundError(f"style {style!r} is not served here; styles: {known}", "style")
        if not 0.0 <= strength <= 1.0:
            raise BadInputError(f"strength {strength}: expected 0 (the photo) to 1 (full style)")
        if looks.get("keep_faces") and self.status["face-detect"]["state"] != "loaded":
            raise UnavailableError("keep_faces: the face models are not available here")
        limit = self.settings.stylize_max_side
        max_side = limit if max_side is None else min(int(max_side), limit)
        try:
            pixels = load_image(photo.data)
        except FacestyleError as error:
            raise self._named(error, photo) from None
        future = self._submit(self.stylize_batcher, "stylize", (self.stylizers[style], pixels, strength, max_side, fmt, looks))
        return future.result(timeout=self.settings.result_timeout_s)

    # -- shutdown -------------------------------------------------------------------------------
    def close(self) -> None:
        """Finish what is queued, then release models and the gallery."""
        self.embed_batcher.close()
        self.stylize_batcher.close()
        if self.gallery is not None:
            self.gallery.close()
