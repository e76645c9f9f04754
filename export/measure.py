"""What a precision variant costs in accuracy and gains in speed, measured in onnxruntime on the CPU.

Every figure compares the variant against its own fp32 source on real inputs:

- face embedding: cosine drift of embeddings on real chips, LFW 10-fold accuracy and TAR@FAR on the
  evaluation pairs, a threshold re-derived for the variant, and ms per chip at batch 1 and 32;
- face detector: recall and mean IoU of the variant's boxes against fp32's, and score drift;
- style: PSNR of the variant's output against fp32's.

LFW photos go through detection and alignment once: their chips are cached on disk (keyed by the
detector, landmarks, upsampling and face-not-found policy), then each variant only embeds them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facestyle.errors import BadInputError
from facestyle.face import lfw
from facestyle.face.evaluation import FARS, POLICY, centre_box, default_cache_path, lfw_figures  # noqa: F401 (re-exported)
from facestyle.images import load_image
from facestyle.manifest import atomic_write_bytes, file_sha256

CHIP_CACHE_VERSION = 1


# -- LFW chips, made once ----------------------------------------------------------------------
@dataclass(frozen=True)
class LfwChips:
    """The subject chip of every image a pairs file names, by the evaluation's face-not-found policy."""

    pairs: list  # list[lfw.Pair]
    files: list[Path]
    found: np.ndarray  # (N,) bool: a face was detected (else the centred box was used)
    chips: np.ndarray  # (N, H, W, 3) uint8

    def index(self) -> dict[Path, int]:
        return {f: i for i, f in enumerate(self.files)}


def subject_chip(analyzer, image: np.ndarray) -> tuple[bool, np.ndarray]:
    """(a face was detected, the subject's aligned chip): the same policy as
    ``facestyle.face.evaluation.subject_embedding``, stopping before the embedding."""
    for upsample in (analyzer.upsample, analyzer.upsample + 1):
        found = analyzer.detector.detect(image, upsample=upsample)
        if len(found):
            centre = np.array([image.shape[1] / 2, image.shape[0] / 2])
            subject = min(range(len(found)), key=lambda i: np.linalg.norm((found.boxes[i, :2] + found.boxes[i, 2:]) / 2 - centre))
            return True, analyzer.chips(image, found.boxes[subject : subject + 1])[1][0]
    return False, analyzer.chips(image, centre_box(image.shape))[1][0]


def _chip_cache_file(analyzer, pairs_file: Path, cache_dir: Path | None) -> Path:
    """One .npz per (pairs file, detector, landmarks, upsampling, policy): any change makes a new one."""
    key = json.dumps([
        CHIP_CACHE_VERSION, hashlib.sha256(Path(pairs_file).read_bytes()).hexdigest(),
        file_sha256(analyzer.detector.backend.model_path), analyzer.landmarks_sha256, analyzer.upsample, POLICY,
    ])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return (cache_dir or default_cache_path().parent / "chips") / f"{Path(pairs_file).stem}-{digest}.npz"


def lfw_chips(analyzer, root: Path, pairs_file: Path, cache_dir: Path | None = None, progress: bool = True) -> LfwChips:
    """Chips of every image of ``pairs_file``, from the cache when the same pipeline made them before."""
    from facestyle.progress import Progress

    pairs = lfw.read_pairs(pairs_file, root)
    files = sorted({p.a for p in pairs} | {p.b for p in pairs})
    cache_file = _chip_cache_file(analyzer, pairs_file, cache_dir)
    names = np.array([str(f.relative_to(root)) for f in files])
    if cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as cached:
            if np.array_equal(cached["files"], names):
                return LfwChips(pairs, files, cached["found"], cached["chips"])
    found, chips = [], []
    with Progress(len(files), f"aligning {Path(pairs_file).name}", enabled=progress) as bar:
        for path in files:
            ok, chip = subject_chip(analyzer, load_image(path))
            found.append(ok)
            chips.append(chip)
            bar.update()
    result = LfwChips(pairs, files, np.array(found), np.stack(chips))
    import io

    buffer = io.BytesIO()
    np.savez(buffer, files=names, found=result.found, chips=result.chips)
    atomic_write_bytes(cache_file, buffer.getvalue())
    return result


def pipeline_analyzer(engines_dir: Path):
    """The fp32 pipeline from ``engines_dir`` (its embedder gives the chip size)."""
    from facestyle.face.analyzer import LANDMARKS_MODEL, FaceAnalyzer

    analyzer = FaceAnalyzer.from_engines(engines_dir)
    analyzer.landmarks_sha256 = file_sha256(Path(engines_dir) / LANDMARKS_MODEL / "model.npz")
    return analyzer


# -- embeddings ----------------------------------------------------------------------------------
def embedder_for(onnx_path: Path):
    from facestyle.face.embedder import FaceEmbedder

    return FaceEmbedder.from_onnx(onnx_path)


def cosine_drift(reference: np.ndarray, variant: np.ndarray) -> dict:
    """Cosine similarity and L2 distance of each variant embedding to its fp32 reference."""
    cos = np.sum(reference * variant, axis=1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(variant, axis=1))
    l2 = np.linalg.norm(reference - variant, axis=1)
    return {"cosine_min": float(cos.min()), "cosine_median": float(np.median(cos)),
            "l2_median": float(np.median(l2)), "l2_max": float(l2.max()), "chips": len(cos)}


def pair_distances(chips: LfwChips, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distances, same, folds) of the pairs, from one embedding per file of ``chips``."""
    index = chips.index()
    a = embeddings[[index[p.a] for p in chips.pairs]]
    b = embeddings[[index[p.b] for p in chips.pairs]]
    same = np.array([p.same for p in chips.pairs])
    folds = np.array([p.fold for p in chips.pairs])
    return np.linalg.norm(a - b, axis=1), same, folds


def operating_far(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """The false accept rate a threshold gives on these pairs: the operating point to keep."""
    return float(np.mean(distances[~same] <= threshold))


def rederive_threshold(distances: np.ndarray, same: np.ndarray, far: float) -> tuple[float, float]:
    """(threshold, TAR) for ``far``: the same rule as ``facestyle calibrate`` (``lfw.tar_at_far``)."""
    tar, threshold = lfw.tar_at_far(distances, same, far)
    return round(threshold, 6), tar


def ms_per_chip(onnx_path: Path, chips: np.ndarray, batch: int, repeats: int = 7) -> float:
    """Fastest wall time per chip of ``embed`` on a batch of ``batch`` chips (preprocessing included)
    over ``repeats`` runs: the minimum, because on a shared machine other work only ever adds time."""
    embedder = embedder_for(onnx_path)
    batch_chips = chips[np.arange(batch) % len(chips)]
    embedder.embed(batch_chips)  # warm-up: first run allocates
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        embedder.embed(batch_chips)
        samples.append((time.perf_counter() - started) * 1000 / batch)
    return round(min(samples), 3)


# -- detector ----------------------------------------------------------------------------------
def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box a against each of boxes b, dlib's inclusive rectangles."""
    iw = np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]) + 1
    ih = np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]) + 1
    inner = np.maximum(iw, 0) * np.maximum(ih, 0)
    area = lambda r: (r[..., 2] - r[..., 0] + 1) * (r[..., 3] - r[..., 1] + 1)  # noqa: E731
    return inner / (area(a) + area(b) - inner)


def detector_agreement(reference_path: Path, variant_path: Path, images: list[np.ndarray], iou_match: float = 0.5,
                       simulate: bool = False) -> dict:
    """Boxes of the variant against fp32's on the same images: recall at IoU >= ``iou_match``, mean IoU
    of the matches, largest score difference, and boxes only the variant found. ``simulate``: see
    :func:`_session`."""
    from facestyle.face.detector import FaceDetector

    reference, variant = FaceDetector.from_onnx(reference_path), FaceDetector.from_onnx(variant_path)
    if simulate:
        session, c = _session(variant_path, simulate=True), variant.contract
        variant.score_map = lambda tensor: session.run([c.output_name], {c.input_name: tensor})[0][0, 0]
    ious, score_drift, missed, extra, total = [], [], 0, 0, 0
    for image in images:
        ref, var = reference.detect(image), variant.detect(image)
        total += len(ref)
        matched = set()
        for box, score in zip(ref.boxes, ref.scores):
            overlap = _iou(box, var.boxes) if len(var) else np.zeros(0)
            best = int(np.argmax(overlap)) if len(overlap) else -1
            if best < 0 or overlap[best] < iou_match:
                missed += 1
                continue
            matched.add(best)
            ious.append(float(overlap[best]))
            score_drift.append(abs(float(score) - float(var.scores[best])))
        extra += len(var) - len(matched)
    return {
        "faces": total,
        "recall": (total - missed) / total if total else 1.0,
        "mean_iou": float(np.mean(ious)) if ious else 0.0,
        "score_drift_max": max(score_drift, default=0.0),
        "score_drift_mean": float(np.mean(score_drift)) if score_drift else 0.0,
        "extra_boxes": extra,
        "images": len(images),
    }


# -- style -------------------------------------------------------------------------------------
def psnr(reference: np.ndarray, variant: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB of ``variant`` against ``reference`` (both clipped to 0..peak first)."""
    ref, var = np.clip(reference, 0, peak).astype(np.float64), np.clip(variant, 0, peak).astype(np.float64)
    mse = float(np.mean((ref - var) ** 2))
    return float("inf") if mse == 0 else round(10 * np.log10(peak**2 / mse), 3)


def style_psnr(reference_path: Path, variant_path: Path, feeds: list[dict[str, np.ndarray]], simulate: bool = False) -> dict:
    """PSNR of the variant's stylised photos against fp32's, per photo (min and mean), outputs on 0..255."""
    if not feeds:
        raise BadInputError("style PSNR: no photos to compare (expected at least one feed)")
    reference, variant = _session(reference_path), _session(variant_path, simulate)
    values = [psnr(reference.run(None, feed)[0], variant.run(None, feed)[0]) for feed in feeds]
    return {"psnr_min": min(values), "psnr_mean": round(float(np.mean(values)), 3), "photos": len(values)}


def _session(path: Path, simulate: bool = False):
    """A CPU session; ``simulate``: no graph optimisation, so Q/DQ pairs run as written (float maths on
    exactly quantised values, as TensorRT computes them) instead of onnxruntime's fused integer
    kernels, whose u8s8 products saturate on CPUs without VNNI."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if simulate:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def output_drift(reference_path: Path, variant_path: Path, feeds: list[dict[str, np.ndarray]], simulate: bool = False) -> float:
    """Worst relative L2 error (per sample, first output) of the variant against fp32 over ``feeds``:
    the model-agnostic drift the per-layer sensitivity search ranks exclusions by."""
    reference, variant = _session(reference_path), _session(variant_path, simulate)
    worst = 0.0
    for feed in feeds:
        ref, var = reference.run(None, feed)[0], variant.run(None, feed)[0]
        ref, var = ref.reshape(len(ref), -1), var.reshape(len(var), -1)
        error = np.linalg.norm(ref - var, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-12)
        worst = max(worst, float(error.max()))
    return worst


# -- one variant against its fp32 source -----------------------------------------------------------
_EMBEDDINGS: dict[tuple[str, str, int], np.ndarray] = {}  # (model sha, chips id, count): fp32 reused across variants


def embed_all(onnx_path: Path, chips: np.ndarray, key: str, simulate: bool = False) -> np.ndarray:
    """Embeddings of ``chips`` (batch 32, the runtime's preprocessing), memoised per model file, chip
    set and mode within the process. ``simulate``: see :func:`_session`."""
    cache_key = (file_sha256(onnx_path), key, len(chips), simulate)
    if cache_key not in _EMBEDDINGS:
        embedder = embedder_for(onnx_path)
        if simulate:
            session, c = _session(onnx_path, simulate=True), embedder.contract
            run = lambda x: session.run([c.output_name], {c.input_name: embedder.preprocess(x)})[0]  # noqa: E731
            _EMBEDDINGS[cache_key] = np.concatenate([run(chips[i : i + 32]) for i in range(0, len(chips), 32)])
        else:
            _EMBEDDINGS[cache_key] = embedder.embed(chips)
    return _EMBEDDINGS[cache_key]


def measure_variant(kind: str, engines_dir: Path, fp32: Path, variant: Path, fp32_manifest: dict, data_dir: Path,
                    precision: str = "") -> tuple[dict, dict]:
    """(figures, threshold fields for the manifest) of ``variant`` against ``fp32``, by model kind.
    ``int8-trt`` accuracy is measured as TensorRT computes it (Q/DQ simulated, see :func:`_session`)."""
    simulate = precision == "int8-trt"
    if kind == "face-embed":
        return measure_embedder(engines_dir, fp32, variant, fp32_manifest, data_dir, simulate)
    if kind == "face-detect":
        figures = {"detector": detector_agreement(fp32, variant, detector_photos(data_dir), simulate=simulate), "size_mib": _mib(variant)}
        if simulate:
            figures["accuracy_mode"] = "Q/DQ simulated in float (TensorRT's arithmetic), not onnxruntime's fused CPU kernels"
            figures["detector_onnxruntime_cpu"] = detector_agreement(fp32, variant, detector_photos(data_dir))
        return figures, {}
    if kind == "style":
        from .precision import style_reader

        feeds = style_reader(4, data_dir=data_dir, folder="test_photos", model=fp32).batches()  # not the calibration photos
        return {"style": style_psnr(fp32, variant, feeds, simulate), "size_mib": _mib(variant)}, {}
    raise BadInputError(f"{variant}: no measurement for model kind {kind!r} (expected face-embed, face-detect or style)")


def _mib(path: Path) -> float:
    return round(Path(path).stat().st_size / 2**20, 2)


def detector_photos(data_dir: Path, max_side: int = 640) -> list[np.ndarray]:
    """The shared faces photos (distinct files, shrunk to ``max_side`` to keep this quick), else skimage's
    astronaut and a few other photos."""
    from PIL import Image

    from .sample_inputs import natural_images, skimage_data_dir

    folder = data_dir / "faces"
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) if folder.is_dir() else []
    if not files:
        return [load_image(skimage_data_dir() / "astronaut.png"), *natural_images([(240, 320), (333, 517)])]
    seen, images = set(), []
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        image = Image.fromarray(load_image(path))
        image.thumbnail((max_side, max_side), Image.BILINEAR)
        images.append(np.asarray(image))
    return images


def measure_embedder(engines_dir: Path, fp32: Path, variant: Path, fp32_manifest: dict, data_dir: Path,
                     simulate: bool = False) -> tuple[dict, dict]:
    """Cosine drift, LFW figures on DevTest, a threshold re-derived on DevTrain, and speed (always
    onnxruntime's CPU kernels). ``simulate``: accuracy of the Q/DQ graph as TensorRT computes it, with
    the drift under onnxruntime's fused CPU kernels reported beside it."""
    from .precision import _skimage_chips, lfw_dir

    root = lfw_dir(data_dir)
    figures: dict = {"size_mib": _mib(variant)}
    threshold: dict = {}
    if root is None:
        chips, source = _skimage_chips(engines_dir, 16)
        reference = embed_all(fp32, chips, "skimage")
        figures["drift"] = {**cosine_drift(reference, embed_all(variant, chips, "skimage", simulate)), "source": source}
    else:
        analyzer = pipeline_analyzer(engines_dir)
        test = lfw_chips(analyzer, root, root / "pairsDevTest.txt")
        reference, ours = embed_all(fp32, test.chips, "devtest"), embed_all(variant, test.chips, "devtest", simulate)
        figures["drift"] = {**cosine_drift(reference, ours), "source": f"LFW View 1 DevTest chips ({root})"}
        chips = test.chips
        model_threshold = float(fp32_manifest.get("threshold", 0.6))
        figures["lfw"] = {**lfw_figures(*pair_distances(test, ours), model_threshold),
                          "no_face": int((~test.found).sum()), "images": len(test.files), "pairs_file": "pairsDevTest.txt"}
        figures["lfw_fp32"] = lfw_figures(*pair_distances(test, reference), model_threshold)
        threshold = threshold_for_variant(analyzer, root, fp32, variant, fp32_manifest, simulate)
    if simulate:
        figures["accuracy_mode"] = "Q/DQ simulated in float (TensorRT's arithmetic), not onnxruntime's fused CPU kernels"
        figures["drift_onnxruntime_cpu"] = cosine_drift(embed_all(fp32, chips[:256], "sample"), embed_all(variant, chips[:256], "sample"))
    chips = chips[:32]
    figures["ms_per_chip"] = {f"b{b}": ms_per_chip(variant, chips, b) for b in (1, 32)}
    figures["ms_per_chip_fp32"] = {f"b{b}": ms_per_chip(fp32, chips, b) for b in (1, 32)}
    return figures, threshold


def threshold_for_variant(analyzer, root: Path, fp32: Path, variant: Path, fp32_manifest: dict, simulate: bool = False) -> dict:
    """The threshold that keeps fp32's operating point: the FAR fp32's threshold gives on DevTrain
    (or the FAR it was calibrated for), re-derived from the variant's own distances with the rule
    ``facestyle calibrate`` uses. DevTrain, not DevTest: the evaluation pairs choose nothing."""
    train = lfw_chips(analyzer, root, root / "pairsDevTrain.txt")
    fp32_distances, same, _ = pair_distances(train, embed_all(fp32, train.chips, "devtrain"))
    calibrated = fp32_manifest.get("calibration", {}).get("far")
    far = float(calibrated) if calibrated is not None else operating_far(fp32_distances, same, float(fp32_manifest.get("threshold", 0.6)))
    distances, _, _ = pair_distances(train, embed_all(variant, train.chips, "devtrain", simulate))
    value, tar = rederive_threshold(distances, same, far)
    origin = "its calibrated FAR" if calibrated is not None else f"the FAR of its threshold {fp32_manifest.get('threshold', 0.6)}"
    return {
        "threshold": value,
        "threshold_source": f"re-derived for this variant on pairsDevTrain.txt ({len(same)} pairs) at FAR {far:.4g} ({origin} for fp32)",
        "threshold_calibration": {"pairs_file": "pairsDevTrain.txt", "pairs": len(same), "far": far, "tar": tar},
    }
