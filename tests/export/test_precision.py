"""Precision variants: fp16 conversion, int8 Q/DQ quantisation, calibration readers, build_variants."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SHARED_DATA, require_shared
from facestyle.errors import BadInputError, ManifestError
from facestyle.export.precision import (
    FaceChipReader,
    FeedListReader,
    PhotoReader,
    StylePhotoReader,
    build_variants,
    fp16_from_onnx,
    int8_from_onnx,
    weight_range_for,
)

LFW = SHARED_DATA / "lfw-view1"
FLOAT, FLOAT16, UINT8, INT8 = 1, 10, 2, 3  # onnx.TensorProto element types


def load(path):
    import onnx

    return onnx.load(str(path))


def metadata(model) -> dict:
    return {p.key: p.value for p in model.metadata_props}


def tensor_types(model) -> dict[str, int]:
    """Element type of every tensor of the graph (inputs, outputs, initializers, inferred values)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.output, *graph.value_info]}
    types.update({t.name: t.data_type for t in graph.initializer})
    return types


def tiny_style_model():
    """Conv -> InstanceNormalization -> ReduceL2 / Softmax: the ops fp16 must keep in float32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    init = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.ones(4, np.float32), "gamma"),
        numpy_helper.from_array(np.zeros(4, np.float32), "beta"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("InstanceNormalization", ["c", "gamma", "beta"], ["n"], name="norm"),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("ReduceL2", ["r", "axes"], ["l2"], keepdims=0, name="l2"),
        helper.make_node("Softmax", ["l2"], ["out"], axis=1, name="softmax"),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    for key, value in {"facestyle.model": '"style-tiny"', "facestyle.scale": "1.0"}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model


# -- fp16 --------------------------------------------------------------------------------------
def test_fp16_keeps_instance_norm_and_reductions_in_fp32_with_fp32_io(tmp_path):
    import onnx
    import onnxruntime

    src = tmp_path / "fp32.onnx"
    onnx.save(tiny_style_model(), str(src))
    model = load(fp16_from_onnx(src, tmp_path / "fp16.onnx"))
    types = tensor_types(model)
    by_name = {n.name: n for n in model.graph.node}
    for name in ("norm", "l2", "softmax"):  # every float tensor in or out of these stays float32
        float_types = [types[t] for t in [*by_name[name].input, *by_name[name].output] if types.get(t) in (FLOAT, FLOAT16)]
        assert float_types and set(float_types) == {FLOAT}, name
    assert types["w"] == FLOAT16  # the convolution itself did go to float16
    assert [types[i.name] for i in model.graph.input] == [FLOAT] and [types[o.name] for o in model.graph.output] == [FLOAT]
    meta = metadata(model)
    assert meta["facestyle.model"] == '"style-tiny"' and meta["facestyle.scale"] == "1.0"
    assert json.loads(meta["facestyle.precision"]) == "fp16"
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 8, 8)).astype(np.float32)
    run = lambda p: onnxruntime.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    assert np.abs(run(src) - run(tmp_path / "fp16.onnx")).max() < 1e-3


def test_fp16_face_embed_keeps_the_global_mean_fp32_and_the_contract(engines_dir, tmp_path):
    src = engines_dir / "face-embed" / "fp32.onnx"
    model = load(fp16_from_onnx(src, tmp_path / "fp16.onnx"))
    types = tensor_types(model)
    mean = next(n for n in model.graph.node if n.op_type == "ReduceMean")
    assert types[mean.input[0]] == FLOAT and types[mean.output[0]] == FLOAT
    source_meta = metadata(load(src))
    assert metadata(model) == {**source_meta, "facestyle.precision": '"fp16"'}


def fp32_and_fp16_embeddings(engines_dir, tmp_path, chips):
    from facestyle.face.embedder import FaceEmbedder

    src = engines_dir / "face-embed" / "fp32.onnx"
    fp16 = fp16_from_onnx(src, tmp_path / "fp16.onnx")
    return FaceEmbedder.from_onnx(src).embed(chips), FaceEmbedder.from_onnx(fp16).embed(chips)


def cosines(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_fp16_embedding_matches_fp32_on_a_real_chip(engines_dir, tmp_path, astronaut_chip):
    reference, half = fp32_and_fp16_embeddings(engines_dir, tmp_path, astronaut_chip[None])
    assert cosines(reference, half).min() >= 0.9999


def test_fp16_embedding_matches_fp32_on_shared_photos(engines_dir, tmp_path, shared_chips):
    chips = np.stack([c for found in shared_chips.values() for c in found])
    reference, half = fp32_and_fp16_embeddings(engines_dir, tmp_path, chips)
    assert len(chips) >= 10 and cosines(reference, half).min() >= 0.9999


# -- calibration readers ---------------------------------------------------------------------------
def test_face_chip_reader_batches_like_the_embedder_and_rewinds(engines_dir, astronaut_chip):
    from facestyle.face.embedder import FaceEmbedder

    src = engines_dir / "face-embed" / "fp32.onnx"
    chips = np.stack([astronaut_chip] * 5)
    reader = FaceChipReader(chips, src, "astronaut x5", batch_size=2)
    batches = reader.batches()
    assert [b["chips"].shape for b in batches] == [(2, 3, 150, 150), (2, 3, 150, 150), (1, 3, 150, 150)]
    assert all(b["chips"].dtype == np.float32 for b in batches) and reader.count == 5
    assert np.array_equal(batches[0]["chips"], FaceEmbedder.from_onnx(src).preprocess(chips[:2]))
    first = reader.get_next()
    reader.get_next(), reader.get_next()
    assert reader.get_next() is None
    reader.rewind()
    assert np.array_equal(reader.get_next()["chips"], first["chips"])


def test_photo_and_style_readers_give_nchw_float32(engines_dir):
    from facestyle.export.sample_inputs import natural_images

    images = natural_images([(60, 80), (97, 131)])
    photos = PhotoReader(images, engines_dir / "face-detect" / "fp32.onnx", "two photos").batches()
    assert len(photos) == 2 and all(f["image"].dtype == np.float32 and f["image"].shape[:2] == (1, 3) for f in photos)
    assert photos[0]["image"].shape[2] >= 60  # the tiled pyramid is at least the image
    style = StylePhotoReader(images, "two photos").batches()
    assert [f["image"].shape for f in style] == [(1, 3, 60, 80), (1, 3, 97, 131)]
    assert style[0]["image"].max() > 1.5 and style[0]["image"].max() <= 255  # raw 0..255, not normalised
    assert np.array_equal(style[0]["image"][0].transpose(1, 2, 0), images[0].astype(np.float32))


# -- int8 --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def detector_reader(engines_dir):
    from facestyle.export.sample_inputs import natural_images

    return PhotoReader(natural_images([(240, 320), (250, 250)]), engines_dir / "face-detect" / "fp32.onnx", "two skimage photos")


def quantize_nodes(model):
    """(activation QuantizeLinear nodes, weight DequantizeLinear nodes) with their zero points."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    quantize = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    weights = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
               and inits[n.input[0]].ndim == 4]
    return inits, quantize, weights


@pytest.mark.parametrize("flavour, activation_dtype", [("int8", np.uint8), ("int8-trt", np.int8)])
def test_int8_flavours_have_the_qdq_structure_they_promise(engines_dir, tmp_path, detector_reader, flavour, activation_dtype):
    src = engines_dir / "face-detect" / "fp32.onnx"
    model = load(int8_from_onnx(src, tmp_path / f"{flavour}.onnx", detector_reader, flavour))
    inits, quantize, weights = quantize_nodes(model)
    assert quantize and weights
    zero_points = [inits[n.input[2]] for n in quantize]
    assert all(z.dtype == activation_dtype for z in zero_points)
    if flavour == "int8-trt":
        assert all(np.all(z == 0) for z in zero_points)  # symmetric activations
    for node in weights:  # int8 per-channel symmetric weights in both flavours
        assert inits[node.input[0]].dtype == np.int8 and inits[node.input[1]].ndim == 1
        assert np.all(inits[node.input[2]] == 0)
    # each channel's largest weight sits on the range's end: 7 bits where auto reduces it
    levels = {"reduced": 64, "full": 127}[weight_range_for(flavour)]
    assert max(int(np.abs(inits[n.input[0]].astype(int)).max()) for n in weights) == levels
    assert metadata(model)["facestyle.precision"] == json.dumps(flavour)
    assert metadata(model)["facestyle.model"] == metadata(load(src))["facestyle.model"]


def test_int8_detector_finds_the_astronaut_like_fp32(engines_dir, tmp_path, detector_reader):
    from facestyle.export.precision.measure import detector_agreement
    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.images import load_image

    src = engines_dir / "face-detect" / "fp32.onnx"
    # The first and last convolutions in float: facestyle.export.kinds' default_excludes say why.
    variant = int8_from_onnx(src, tmp_path / "int8.onnx", detector_reader, "int8", exclude_nodes=["@first", "@last"])
    figures = detector_agreement(src, variant, [load_image(skimage_data_dir() / "astronaut.png")])
    # Calibrated on two photos only, the box may move to a neighbouring pyramid level: IoU ~0.7.
    assert figures["faces"] == 1 and figures["recall"] == 1.0
    assert figures["mean_iou"] >= 0.6 and figures["score_drift_max"] < 0.4


@pytest.fixture(scope="module")
def embed_int8(engines_dir, tmp_path_factory, astronaut_chip):
    """face-embed int8 (CPU flavour) at each weight range, calibrated on a real aligned chip and its
    mirror image (tiny, so this runs on a fresh machine; the LFW test below calibrates on DevTrain)."""
    src = engines_dir / "face-embed" / "fp32.onnx"
    chips = np.ascontiguousarray(np.stack([astronaut_chip, astronaut_chip[:, ::-1]]))
    out = tmp_path_factory.mktemp("int8")
    return {weights: int8_from_onnx(src, out / f"{weights}.onnx", FaceChipReader(chips, src, "astronaut chip and its mirror image"),
                                    "int8", exclude_nodes=["@first"], weight_range=weights)
            for weights in ("reduced", "full")}


def test_int8_embedding_drift_is_bounded_on_a_real_chip(engines_dir, embed_int8, astronaut_chip):
    """What ``auto`` gives on any CPU, checked here whatever this CPU is: reduced range through
    onnxruntime's kernels (which never saturate on 7-bit weights), and full range in exact arithmetic
    (what VNNI kernels compute; ``facestyle.export.precision.measure.cpu_inference``)."""
    from facestyle.export.precision.measure import cpu_inference
    from facestyle.face.embedder import FaceEmbedder

    reference = FaceEmbedder.from_onnx(engines_dir / "face-embed" / "fp32.onnx").embed(astronaut_chip)
    reduced = FaceEmbedder.from_onnx(embed_int8["reduced"])
    exact_full = cpu_inference(embed_int8["full"], simulate=True)
    contract = reduced.contract
    quantised = {"reduced": reduced.embed(astronaut_chip),
                 "full": exact_full.run([contract.output_name], {contract.input_name: reduced.preprocess(astronaut_chip[None])})[0]}
    # Same-person distances are ~0.35-0.45 and the threshold 0.6: a drift under 0.08 keeps decisions.
    for weights, embedding in quantised.items():
        assert np.linalg.norm(reference - embedding) < 0.08 and cosines(reference, embedding)[0] >= 0.999, weights


def test_int8_errors_name_the_input(engines_dir, tmp_path, detector_reader):
    src = engines_dir / "face-detect" / "fp32.onnx"
    with pytest.raises(BadInputError, match="yielded no batches"):
        int8_from_onnx(src, tmp_path / "x.onnx", FeedListReader([], "nothing"), "int8")
    with pytest.raises(BadInputError, match="int8 flavour: expected one of int8, int8-trt, got 'int4'"):
        int8_from_onnx(src, tmp_path / "x.onnx", detector_reader, "int4")
    with pytest.raises(BadInputError, match="calibration method: expected one of minmax"):
        int8_from_onnx(src, tmp_path / "x.onnx", detector_reader, "int8", method="mse")
    with pytest.raises(BadInputError, match="int8 weight range: expected one of auto, full, reduced, got 'half'"):
        int8_from_onnx(src, tmp_path / "x.onnx", detector_reader, "int8", weight_range="half")
    with pytest.raises(BadInputError, match="exclude_nodes: no_such_node not in"):
        int8_from_onnx(src, tmp_path / "x.onnx", detector_reader, "int8", exclude_nodes=["no_such_node"])
    with pytest.raises(BadInputError, match="missing.onnx: no such ONNX model"):
        fp16_from_onnx(tmp_path / "missing.onnx", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()  # nothing half-written


def test_auto_weight_range_is_reduced_unless_the_cpu_has_vnni():
    avx2, avx512 = frozenset({"avx", "avx2"}), frozenset({"avx2", "avx512f", "avx512bw"})
    assert weight_range_for("int8", "auto", avx2) == weight_range_for("int8", "auto", avx512) == "reduced"
    assert (weight_range_for("int8", "auto", avx512 | {"avx512_vnni"})
            == weight_range_for("int8", "auto", avx2 | {"avx_vnni"}) == "full")
    assert weight_range_for("int8-trt", "auto", avx2) == "full"  # TensorRT accumulates in int32
    assert (weight_range_for("int8", "full", avx2) == "full"
            and weight_range_for("int8", "reduced", avx512 | {"avx512_vnni"}) == "reduced")


# -- build_variants ----------------------------------------------------------------------------
@pytest.fixture()
def detector_engines(engines_dir, tmp_path):
    """A copy of the face-detect fp32 artifact alone, so variants are written beside it."""
    import shutil

    out = tmp_path / "engines"
    shutil.copytree(engines_dir / "face-detect", out / "face-detect")
    return out


def test_build_variants_writes_artifacts_and_manifests_then_is_a_no_op(detector_engines, detector_reader):
    from facestyle.cpu import cpu_flags, has_vnni
    from facestyle.face.detector import FaceDetector
    from facestyle.manifest import file_sha256, read_manifest

    rows = build_variants(detector_engines, "face-detect", ["fp32", "fp16", "int8"], detector_reader, measure=False)
    assert [(r["precision"], r["status"]) for r in rows] == [("fp32", "source"), ("fp16", "built"), ("int8", "built")]
    fp32_sha = file_sha256(detector_engines / "face-detect" / "fp32.onnx")
    manifest = read_manifest(detector_engines / "face-detect" / "int8.manifest.json")
    assert manifest["precision"] == "int8" and manifest["source"]["sha256"] == fp32_sha
    assert manifest["calibration"]["source"] == "two skimage photos" and manifest["calibration"]["count"] == 2
    assert manifest["calibration"]["method"] == "minmax" and manifest["calibration"]["activations"] == "uint8 asymmetric"
    assert (manifest["calibration"]["weight_range"] == weight_range_for("int8")
            and manifest["calibration"]["weight_range_choice"] == "auto")
    cpu = manifest["calibration"]["built_on_cpu"]  # what auto decided on
    assert cpu["vnni"] == has_vnni() and set(cpu["flags"]) <= cpu_flags() and cpu["model"]
    assert manifest["contract"]["model"] == "face-detect"
    assert read_manifest(detector_engines / "face-detect" / "fp16.manifest.json")["conversion"]["io_types"] == "float32"
    FaceDetector.from_engines(detector_engines, precision="int8")  # the runtime loads it, sha256 checked
    again = build_variants(detector_engines, "face-detect", ["fp16", "int8"], detector_reader, measure=False)
    assert [r["status"] for r in again] == ["up to date", "up to date"]


def test_build_variants_refuses_unknown_precisions_and_missing_fp32(detector_engines, tmp_path):
    with pytest.raises(BadInputError, match="precision: expected some of fp32, fp16, int8, int8-trt, got 'int4'"):
        build_variants(detector_engines, "face-detect", ["fp16", "int4"])
    with pytest.raises(BadInputError, match="int8 weight range: expected one of auto, full, reduced, got '7bit'"):
        build_variants(detector_engines, "face-detect", ["fp16"], weight_range="7bit")
    assert not (detector_engines / "face-detect" / "fp16.onnx").exists()
    with pytest.raises(ManifestError, match="face-embed/fp32.onnx: no fp32 artifact .* run `facestyle build` first"):
        build_variants(tmp_path / "empty", "face-embed", ["int8"])


def test_weight_range_rebuilds_and_a_full_range_model_warns_where_it_saturates(detector_engines, detector_reader, caplog):
    """The weight range is part of a variant's fingerprint; loading a full-range uint8 x int8 model
    warns once on a CPU whose kernels saturate it (``facestyle.cpu.u8s8_saturates``), and a
    reduced-range one never does."""
    from facestyle.cpu import u8s8_saturates
    from facestyle.face.detector import FaceDetector
    from facestyle.manifest import read_manifest

    def built(weight_range):
        rows = build_variants(detector_engines, "face-detect", ["int8"], detector_reader, measure=False, weight_range=weight_range)
        return rows[0]["status"]

    def warnings_on_load():
        caplog.clear()
        FaceDetector.from_engines(detector_engines, precision="int8").close()
        return [r.getMessage() for r in caplog.records if "full-range (8-bit) weights" in r.getMessage()]

    caplog.set_level("WARNING", logger="facestyle")
    assert built("full") == "built"
    assert read_manifest(detector_engines / "face-detect" / "int8.manifest.json")["calibration"]["weight_range"] == "full"
    first = warnings_on_load()
    assert len(first) == (1 if u8s8_saturates() else 0)
    assert all("int8.manifest.json: int8 model with full-range" in m and "--precision int8 --force" in m for m in first)
    assert warnings_on_load() == []  # once
    assert built("reduced") == "built" and built("reduced") == "up to date"
    assert read_manifest(detector_engines / "face-detect" / "int8.manifest.json")["calibration"]["weight_range"] == "reduced"
    assert warnings_on_load() == []


def test_build_variants_measures_the_detector(detector_engines, detector_reader, monkeypatch):
    from facestyle.export.precision import measure

    monkeypatch.setattr(measure, "detector_photos", lambda data_dir: [_astronaut()])
    rows = build_variants(detector_engines, "face-detect", ["int8"], detector_reader)
    figures = rows[0]["measured"]["detector"]
    assert figures["faces"] == 1 and figures["recall"] == 1.0 and figures["mean_iou"] >= 0.6
    manifest = json.loads((detector_engines / "face-detect" / "int8.manifest.json").read_text())
    assert manifest["measured"]["detector"] == figures
    excluded = manifest["calibration"]["excluded_nodes"]
    graph = load(detector_engines / "face-detect" / "fp32.onnx").graph
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    names = [n.name for n in graph.node]
    # @first: the first convolution; @last: the score convolution (as taps) and every node after it
    assert excluded[:2] == [convs[0], convs[-1]] and set(excluded[1:]) == set(names[names.index(convs[-1]):])


def _astronaut():
    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.images import load_image

    return load_image(skimage_data_dir() / "astronaut.png")


# -- accuracy on LFW (the evaluation pairs; several minutes, needs the shared data) ----------------
def test_int8_lfw_view1_devtest_accuracy_within_the_budget(engines_dir, tmp_path_factory):
    """int8 (CPU flavour) loses at most 0.3 points of LFW View 1 DevTest accuracy against fp32,
    calibrated on DevTrain chips only."""
    from facestyle.export.datasets import lfw_chips, pipeline_analyzer, spread
    from facestyle.export.precision.measure import pair_distances
    from facestyle.face import lfw
    from facestyle.face.embedder import FaceEmbedder
    from facestyle.face.evaluation import lfw_figures, subject_chip
    from facestyle.images import load_image

    root = require_shared(LFW)
    analyzer = pipeline_analyzer(engines_dir)
    train = lfw.read_pairs(root / "pairsDevTrain.txt", root)
    files = spread(sorted({p.a for p in train}), 96)
    chips = np.stack([subject_chip(analyzer, load_image(f))[1] for f in files])
    src = engines_dir / "face-embed" / "fp32.onnx"
    reader = FaceChipReader(chips, src, "DevTrain")
    variant = int8_from_onnx(src, tmp_path_factory.mktemp("lfw") / "int8.onnx", reader, "int8", exclude_nodes=["@first"])
    test = lfw_chips(analyzer, root, root / "pairsDevTest.txt", cache_dir=tmp_path_factory.mktemp("chips"), progress=False)
    fp32 = lfw_figures(*pair_distances(test, FaceEmbedder.from_onnx(src).embed(test.chips)), 0.6)
    int8 = lfw_figures(*pair_distances(test, FaceEmbedder.from_onnx(variant).embed(test.chips)), 0.6)
    assert fp32["accuracy"] >= 0.981
    assert int8["accuracy"] >= fp32["accuracy"] - 0.003


@pytest.mark.skipif(not (SHARED_DATA / "lfw-view1").is_dir(), reason="the int8 detector is calibrated on LFW in ../shared/data")
def test_face_commands_run_the_int8_detector_when_asked(engines_dir, tmp_path, capsys):
    import shutil

    from facestyle.cli import main
    from facestyle.export.sample_inputs import skimage_data_dir

    engines = tmp_path / "engines"
    shutil.copytree(engines_dir, engines)
    photo = str(skimage_data_dir() / "astronaut.png")
    assert main(["embed", photo, "--json", "--engines", str(engines), "--detector-precision", "int8"]) == 2
    assert "int8.manifest.json" in capsys.readouterr().err  # not built yet: the missing manifest is named
    build_variants(engines, "face-detect", ["int8"], measure=False)  # as `facestyle build --precision int8` calibrates
    faces = {}
    for precision in ("fp32", "int8"):
        assert main(["embed", photo, "--json", "--engines", str(engines), "--detector-precision", precision]) == 0
        faces[precision] = json.loads(capsys.readouterr().out)[0]["faces"]
    assert len(faces["int8"]) == len(faces["fp32"]) == 1
    (a, b) = (np.asarray(f[0]["box"], float) for f in (faces["fp32"], faces["int8"]))
    inner = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]) + 1, 0, None))
    area = lambda r: np.prod(r[2:] - r[:2] + 1)
    assert inner / (area(a) + area(b) - inner) >= 0.95  # the bar for a detector variant
