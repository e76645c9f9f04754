"""facestyle export-triton: every generated config.pbtxt parses into Triton's ModelConfig protobuf, on every
platform, with the batch sizes, dims, batching and parameters the kinds table and the manifests give;
the repository is replaced atomically (a failed export leaves the old one whole)."""

from __future__ import annotations

import json

import pytest

from facestyle.errors import BadInputError, ManifestError
from facestyle.kinds import KINDS

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                                       reason="tritonclient is not installed: pip install 'facestyle[triton]'")
text_format = pytest.importorskip("google.protobuf.text_format")


def parse(text: str):
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def configs(repo):
    return {p.parent.name: parse(p.read_text()) for p in sorted(repo.glob("*/config.pbtxt"))}


@pytest.mark.parametrize("platform", ["onnxruntime", "python"])
def test_exported_configs_parse_and_follow_the_kinds_table(engines_dir, tmp_path, platform):
    from facestyle.export.triton_repo import export_repository

    repo = tmp_path / "repo"
    export_repository(repo, engines_dir, platform=platform)
    found = configs(repo)
    assert set(found) == {"face-detect", "face-embed", "face-pipeline"}
    embed = found["face-embed"]
    assert embed.max_batch_size == KINDS["face-embed"].max_batch == 64
    assert list(embed.input[0].dims) == [3, 150, 150] and embed.input[0].data_type == model_config_pb2.TYPE_FP32
    assert list(embed.output[0].dims) == [128]
    assert list(embed.dynamic_batching.preferred_batch_size) == [8, 64]
    assert float(embed.parameters["manifest.threshold"].string_value) == 0.6
    assert json.loads(embed.parameters["facestyle.input_size"].string_value) == [150, 150]
    detect = found["face-detect"]
    assert detect.max_batch_size == 0 and list(detect.input[0].dims) == [1, 3, -1, -1]  # batch fixed at 1, H/W dynamic
    assert not detect.HasField("dynamic_batching")
    if platform == "onnxruntime":
        assert embed.platform == "onnxruntime_onnx" and embed.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
        assert (repo / "face-embed" / "1" / "model.onnx").stat().st_size > 20e6
    else:
        assert embed.backend == "python" and embed.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
        assert (repo / "face-embed" / "1" / "model.py").exists()
    pipeline = found["face-pipeline"]
    assert pipeline.backend == "python" and [i.name for i in pipeline.input] == ["IMAGE", "UPSAMPLE"]
    assert pipeline.input[0].data_type == model_config_pb2.TYPE_STRING and pipeline.input[1].optional
    assert (repo / "face-pipeline" / "1" / "landmarks.npz").exists()


def test_tensorrt_configs_parse_and_a_missing_engine_is_named(engines_dir, tmp_path):
    from facestyle.export.triton_repo import _built, export_repository, model_spec, onnx_io, render_config
    from facestyle.kinds import kind_of_model

    for model in ("face-embed", "face-detect"):
        kind = kind_of_model(model)
        built = _built(engines_dir, model, "fp32")
        inputs, outputs, _ = onnx_io(built.artifact, kind)
        config = parse(render_config(model_spec(model, kind, "tensorrt", inputs, outputs, {}, instances=2)))
        assert config.platform == "tensorrt_plan" and config.default_model_filename == "model.plan"
        assert config.instance_group[0].count == 2 and config.max_batch_size == (64 if kind.max_batch > 1 else 0)
    with pytest.raises(ManifestError, match=r"fp32\.trt\.engine: no TensorRT engine built for face-(detect|embed) fp32"):
        export_repository(tmp_path / "trt", engines_dir, platform="tensorrt")
    assert not (tmp_path / "trt").exists() and list(tmp_path.iterdir()) == []  # nothing half-written


def test_a_failed_export_leaves_the_previous_repository_whole(engines_dir, tmp_path):
    from facestyle.export.triton_repo import export_repository

    repo = tmp_path / "repo"
    export_repository(repo, engines_dir, models=["face-embed"], platform="python")
    before = sorted(p.relative_to(repo) for p in repo.rglob("*"))
    with pytest.raises(ManifestError,
                       match=r"engines\d*: no model has a fp16 variant built \(run `facestyle build --precision fp16`\)"):
        export_repository(repo, engines_dir, models=["face-embed"], precision="fp16", platform="python")
    with pytest.raises(BadInputError, match="--platform 'triton'"):
        export_repository(repo, engines_dir, platform="triton")
    assert sorted(p.relative_to(repo) for p in repo.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["repo"]  # no staging folder left behind


def test_cli_export_triton(engines_dir, tmp_path, capsys):
    from facestyle.cli import main

    assert main(["export-triton", "--out", str(tmp_path / "r"), "--engines", str(engines_dir),
                 "--models", "face-embed", "--instances", "3"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("face-embed"))
    assert line.split()[:3] == ["face-embed", "onnxruntime", "fp32"]
    assert configs(tmp_path / "r")["face-embed"].instance_group[0].count == 3
    assert main(["export-triton", "--out", str(tmp_path / "r"), "--engines", str(engines_dir), "--models", "nose-5"]) == 2
    assert "model 'nose-5': not of a known kind" in capsys.readouterr().err


@pytest.mark.parametrize("scheme", ["", "grpc://"])
def test_client_names_a_server_it_cannot_reach(scheme):
    from facestyle.errors import BackendUnavailableError
    from facestyle.triton import TritonFaces
    from facestyle.triton.local import free_port

    port = free_port()  # nothing listens there
    with pytest.raises(BackendUnavailableError, match=rf"triton 127\.0\.0\.1:{port} \((http|grpc)\): cannot connect"):
        TritonFaces(f"{scheme}127.0.0.1:{port}")


@pytest.mark.parametrize("platform", ["onnxruntime", "python"])
def test_a_style_model_is_exported_by_its_kind(style_engines, tmp_path, platform):
    from facestyle.export.triton_repo import export_repository

    engines, style = style_engines
    done = export_repository(tmp_path / "repo", engines, platform=platform)
    assert [d.model for d in done] == [f"style-{style}"]  # no face models there: no pipeline either
    config = configs(tmp_path / "repo")[f"style-{style}"]
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [1, 3, -1, -1]  # any height and width
    assert list(config.output[0].dims) == [1, 3, -1, -1] and not config.HasField("dynamic_batching")
    assert json.loads(config.parameters["facestyle.model"].string_value) == "style"


def test_platforms_are_rows_of_one_table_that_the_cli_offers():
    from facestyle.cli.triton import PLATFORMS as CLI_PLATFORMS
    from facestyle.export.triton_repo import PLATFORMS, model_spec, render_config

    assert tuple(CLI_PLATFORMS) == tuple(PLATFORMS)
    for name, row in PLATFORMS.items():
        config = parse(render_config(model_spec("face-embed", KINDS["face-embed"], name, [], [], {})))
        assert (config.platform or None, config.backend or None) == (row.triton_platform, row.backend), name
        named = config.default_model_filename or config.parameters["onnx_file"].string_value
        assert named == row.model_file, name
