"""What a precision variant costs in accuracy and gains in speed, measured in onnxruntime on the CPU.

Every figure compares the variant against its own fp32 source on real inputs
(``facestyle.export.datasets``):

- face embedding: cosine drift of embeddings on real chips, LFW 10-fold accuracy and TAR@FAR on the
  evaluation pairs, a threshold re-derived for the variant, and ms per chip at batch 1 and 32;
- face detector: recall and mean IoU of the variant's boxes against fp32's, and score drift;
- style: PSNR of the variant's output against fp32's.

The export kinds table names one function per kind, ``(VariantJob) -> (figures, threshold fields)``:
:func:`measure_embed_variant`, :func:`measure_detect_variant`, :func:`measure_style_variant`. A
precision with TensorRT's arithmetic is measured as TensorRT computes it (Q/DQ simulated, see
:func:`cpu_inference`), with onnxruntime's fused CPU kernels reported beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facestyle.capabilities import precision_named
from facestyle.errors import BadInputError
from facestyle.face import lfw
from facestyle.face.evaluation import lfw_figures
from facestyle.manifest import file_sha256
from facestyle.timing import time_calls

from ..datasets import LfwChips, detector_photos, lfw_chips, lfw_dir, pipeline_analyzer, skimage_chips

SIMULATED = "Q/DQ simulated in float (TensorRT's arithmetic), not onnxruntime's fused CPU kernels"


def cpu_inference(path: Path, simulate: bool = False):
    """An onnxruntime InferenceSession on the CPU; ``simulate``: no graph optimisation, so Q/DQ pairs run as written (float maths on
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
    reference, variant = cpu_inference(reference_path), cpu_inference(variant_path, simulate)
    worst = 0.0
    for feed in feeds:
        ref, var = reference.run(None, feed)[0], variant.run(None, feed)[0]
        ref, var = ref.reshape(len(ref), -1), var.reshape(len(var), -1)
        error = np.linalg.norm(ref - var, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-12)
        worst = max(worst, float(error.max()))
    return worst


def _mib(path: Path) -> float:
    return round(Path(path).stat().st_size / 2**20, 2)


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
    seconds, _ = time_calls(lambda: embedder.embed(batch_chips), repeats, warmup=1)  # warm-up: first run allocates
    return round(min(seconds) * 1000 / batch, 3)


_EMBEDDINGS: dict[tuple, np.ndarray] = {}  # (model sha, chips id, count, mode): fp32 reused across variants


def embed_all(onnx_path: Path, chips: np.ndarray, key: str, simulate: bool = False) -> np.ndarray:
    """Embeddings of ``chips`` (batch 32, the runtime's preprocessing), memoised per model file, chip
    set and mode within the process. ``simulate``: see :func:`cpu_inference`."""
    cache_key = (file_sha256(onnx_path), key, len(chips), simulate)
    if cache_key not in _EMBEDDINGS:
        embedder = embedder_for(onnx_path)
        if simulate:
            simulated, c = cpu_inference(onnx_path, simulate=True), embedder.contract
            run = lambda x: simulated.run([c.output_name], {c.input_name: embedder.preprocess(x)})[0]
            _EMBEDDINGS[cache_key] = np.concatenate([run(chips[i : i + 32]) for i in range(0, len(chips), 32)])
        else:
            _EMBEDDINGS[cache_key] = embedder.embed(chips)
    return _EMBEDDINGS[cache_key]


def threshold_for_variant(analyzer, root: Path, fp32: Path, variant: Path, fp32_manifest: dict, simulate: bool = False) -> dict:
    """The threshold that keeps fp32's operating point: the FAR fp32's threshold gives on DevTrain
    (or the FAR it was calibrated for), re-derived from the variant's own distances with the rule
    ``facestyle calibrate`` uses. DevTrain, not DevTest: the evaluation pairs choose nothing."""
    train = lfw_chips(analyzer, root, root / "pairsDevTrain.txt")
    fp32_distances, same, _ = pair_distances(train, embed_all(fp32, train.chips, "devtrain"))
    calibrated = fp32_manifest.get("calibration", {}).get("far")
    far = (float(calibrated) if calibrated is not None
           else operating_far(fp32_distances, same, float(fp32_manifest.get("threshold", 0.6))))
    distances, _, _ = pair_distances(train, embed_all(variant, train.chips, "devtrain", simulate))
    value, tar = rederive_threshold(distances, same, far)
    origin = "its calibrated FAR" if calibrated is not None else f"the FAR of its threshold {fp32_manifest.get('threshold', 0.6)}"
    return {
        "threshold": value,
        "threshold_source": f"re-derived for this variant on pairsDevTrain.txt ({len(same)} pairs) "
                            f"at FAR {far:.4g} ({origin} for fp32)",
        "threshold_calibration": {"pairs_file": "pairsDevTrain.txt", "pairs": len(same), "far": far, "tar": tar},
    }


def measure_embedder(engines_dir: Path, fp32: Path, variant: Path, fp32_manifest: dict, data_dir: Path,
                     simulate: bool = False) -> tuple[dict, dict]:
    """Cosine drift, LFW figures on DevTest, a threshold re-derived on DevTrain, and speed (always
    onnxruntime's CPU kernels). ``simulate``: accuracy of the Q/DQ graph as TensorRT computes it, with
    the drift under onnxruntime's fused CPU kernels reported beside it."""
    root = lfw_dir(data_dir)
    figures: dict = {"size_mib": _mib(variant)}
    threshold: dict = {}
    if root is None:
        chips, source = skimage_chips(engines_dir, 16)
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
        figures["accuracy_mode"] = SIMULATED
        figures["drift_onnxruntime_cpu"] = cosine_drift(embed_all(fp32, chips[:256], "sample"),
                                                        embed_all(variant, chips[:256], "sample"))
    chips = chips[:32]
    figures["ms_per_chip"] = {f"b{b}": ms_per_chip(variant, chips, b) for b in (1, 32)}
    figures["ms_per_chip_fp32"] = {f"b{b}": ms_per_chip(fp32, chips, b) for b in (1, 32)}
    return figures, threshold


# -- detector ----------------------------------------------------------------------------------
def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box a against each of boxes b, dlib's inclusive rectangles."""
    iw = np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]) + 1
    ih = np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]) + 1
    inner = np.maximum(iw, 0) * np.maximum(ih, 0)
    area = lambda r: (r[..., 2] - r[..., 0] + 1) * (r[..., 3] - r[..., 1] + 1)
    return inner / (area(a) + area(b) - inner)


def detector_agreement(reference_path: Path, variant_path: Path, images: list[np.ndarray], iou_match: float = 0.5,
                       simulate: bool = False) -> dict:
    """Boxes of the variant against fp32's on the same images: recall at IoU >= ``iou_match``, mean IoU
    of the matches, largest score difference, and boxes only the variant found. ``simulate``: see
    :func:`cpu_inference`."""
    from facestyle.face.detector import FaceDetector

    reference, variant = FaceDetector.from_onnx(reference_path), FaceDetector.from_onnx(variant_path)
    if simulate:
        simulated, c = cpu_inference(variant_path, simulate=True), variant.contract
        variant.score_map = lambda tensor: simulated.run([c.output_name], {c.input_name: tensor})[0][0, 0]
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
    reference, variant = cpu_inference(reference_path), cpu_inference(variant_path, simulate)
    values = [psnr(reference.run(None, feed)[0], variant.run(None, feed)[0]) for feed in feeds]
    return {"psnr_min": min(values), "psnr_mean": round(float(np.mean(values)), 3), "photos": len(values)}


# -- the export kinds table's measurements: (VariantJob) -> (figures, threshold fields) -------------
def _simulates(job) -> bool:
    return precision_named(job.precision).tensorrt_arithmetic


def measure_embed_variant(job) -> tuple[dict, dict]:
    return measure_embedder(job.engines_dir, job.fp32, job.variant, job.fp32_manifest, job.data_dir, _simulates(job))


def measure_detect_variant(job) -> tuple[dict, dict]:
    simulate = _simulates(job)
    photos = detector_photos(job.data_dir)
    figures = {"detector": detector_agreement(job.fp32, job.variant, photos, simulate=simulate), "size_mib": _mib(job.variant)}
    if simulate:
        figures["accuracy_mode"] = SIMULATED
        figures["detector_onnxruntime_cpu"] = detector_agreement(job.fp32, job.variant, photos)
    return figures, {}


def measure_style_variant(job) -> tuple[dict, dict]:
    from .readers import style_reader

    feeds = style_reader(4, data_dir=job.data_dir, folder="test_photos", model=job.fp32).batches()  # not the calibration photos
    return {"style": style_psnr(job.fp32, job.variant, feeds, _simulates(job)), "size_mib": _mib(job.variant)}, {}
