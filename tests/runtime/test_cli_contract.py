"""The command-line contract as users meet it: several inputs, safe outputs, verify's exit codes,
quiet logging with -v, tiny images, chips and --annotate. Real photos and real built models throughout."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import FACES, require_shared
from facestyle.cli import main
from facestyle.images import load_image


def photo(name: str):
    return next(p for p in require_shared(FACES).rglob(name))


@pytest.fixture
def truncated(tmp_path):
    data = photo("obama.jpg").read_bytes()
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(data[: len(data) // 3])
    return bad


# -- several inputs: every one processed, a failing one reported in its place -------------------------------------
def test_embed_reports_a_bad_file_in_its_place_and_goes_on(engines_dir, truncated, capsys):
    good, good2 = photo("obama.jpg"), photo("biden.jpg")
    assert main(["embed", str(good), str(truncated), str(good2), "--json", "--engines", str(engines_dir)]) == 2
    out = json.loads(capsys.readouterr().out)
    assert [o["file"] for o in out] == [str(good), str(truncated), str(good2)]
    assert len(out[0]["faces"]) == 1 and len(out[2]["faces"]) == 1
    assert set(out[1]) == {"file", "error"} and str(truncated) in out[1]["error"] and "\n" not in out[1]["error"]


def test_embed_text_mode_reports_the_bad_file_on_stderr(engines_dir, truncated, capsys):
    good = photo("obama.jpg")
    assert main(["embed", str(good), str(truncated), "--engines", str(engines_dir)]) == 2
    captured = capsys.readouterr()
    assert f"{good}\t1 face(s)" in captured.out
    assert len(captured.err.strip().splitlines()) == 1 and str(truncated) in captured.err


def test_embed_aligned_reports_a_wrong_chip_in_its_place(engines_dir, astronaut_chip, tmp_path, capsys):
    chip, wrong = tmp_path / "chip.png", tmp_path / "wrong.png"
    Image.fromarray(astronaut_chip).save(chip)
    Image.new("RGB", (160, 120)).save(wrong)
    assert main(["embed", "--aligned", str(wrong), str(chip), "--json", "--engines", str(engines_dir)]) == 2
    out = json.loads(capsys.readouterr().out)
    assert "got 160x120" in out[0]["error"] and len(out[1]["embedding"]) == 128


def test_a_folder_means_its_images_recursively_sorted(engines_dir, tmp_path, capsys):
    (tmp_path / "b").mkdir()
    shutil.copy(photo("obama.jpg"), tmp_path / "b" / "x.jpg")
    shutil.copy(photo("biden.jpg"), tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    assert main(["embed", str(tmp_path), "--json", "--engines", str(engines_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["file"] for o in out] == [str(tmp_path / "a.jpg"), str(tmp_path / "b" / "x.jpg")]


def test_identify_reports_a_bad_file_and_says_gallery_empty(engines_dir, truncated, tmp_path, capsys):
    gallery = tmp_path / "g.db"
    assert main(["enroll", "--gallery", str(gallery), "obama", str(photo("obama.jpg")), "--engines", str(engines_dir)]) == 0
    assert main(["gallery", "remove", "obama", "--gallery", str(gallery), "--engines", str(engines_dir)]) == 0
    capsys.readouterr()
    good = photo("obama2.jpg")
    assert main(["identify", "--gallery", str(gallery), str(good), str(truncated), "--json",
                 "--engines", str(engines_dir)]) == 2
    out = json.loads(capsys.readouterr().out)
    assert len(out[0]["faces"]) == 1 and set(out[1]) == {"file", "error"}
    assert main(["identify", "--gallery", str(gallery), str(good), "--engines", str(engines_dir)]) == 0
    assert f"{good}: 1 face, gallery empty: unknown" in capsys.readouterr().out


# -- outputs ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def a_file(tmp_path):
    f = tmp_path / "file.jpg"
    f.write_bytes(b"x")
    return f


def test_stylize_outputs_that_cannot_be_written(style_engines, a_file, capsys):
    root, name = style_engines
    src = photo("obama.jpg")
    for out in (a_file / "out.png", "/proc/x.png"):
        assert main(["stylize", "--style", name, str(src), str(out), "--engines", str(root)]) == 2
        err = capsys.readouterr().err
        assert str(out) in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(a_file.parent.iterdir()) == [a_file]  # nothing half-written


def test_stylize_refuses_to_overwrite_its_input_unless_told(style_engines, tmp_path, capsys):
    root, name = style_engines
    src = tmp_path / "in.png"
    shutil.copy(photo("obama.jpg"), tmp_path / "in.jpg")
    Image.open(tmp_path / "in.jpg").save(src)
    before = src.read_bytes()
    assert main(["stylize", "--style", name, str(src), str(src), "--engines", str(root)]) == 2
    assert "--overwrite" in capsys.readouterr().err and src.read_bytes() == before
    assert main(["stylize", "--style", name, str(src), str(src), "--overwrite", "--engines", str(root)]) == 0
    assert src.read_bytes() != before


def test_video_outputs_into_a_non_directory(engines_dir, style_engines, a_file, capsys):
    pytest.importorskip("cv2")
    root, name = style_engines
    video = a_file.parent / "in.mp4"
    for args in (["stylize-video", str(video), str(a_file / "out.mp4"), "--style", name, "--engines", str(root)],
                 ["watch", "--source", str(video), "--out", str(a_file / "out.mp4"), "--engines", str(engines_dir)],
                 ["watch", "--source", str(video), "--json-lines", str(a_file / "x.jsonl"), "--engines", str(engines_dir)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert str(a_file) in err and len(err.strip().splitlines()) == 1


def test_style_optimize_unwritable_output_fails_before_work(a_file, capsys):
    src = photo("obama.jpg")
    assert main(["style-optimize", str(src), str(src), str(a_file / "out.png"), "--steps", "1", "--size", "16"]) == 2
    assert str(a_file / "out.png") in capsys.readouterr().err


# -- tiny images -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("width,height", [(1, 1), (5000, 3), (3, 900), (7, 9)])
def test_stylize_tiny_and_thin_images_come_back_at_their_size(style_engines, tmp_path, width, height, capsys):
    root, name = style_engines
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(src)
    assert main(["stylize", "--style", name, str(src), str(out), "--engines", str(root)]) == 0
    assert load_image(out).shape == (height, width, 3)


# -- verify exit codes, options, messages ----------------------------------------------------------------------------
def test_verify_exit_codes_like_cmp(engines_dir, tmp_path, capsys):
    obama, obama2, biden = photo("obama.jpg"), photo("obama2.jpg"), photo("biden.jpg")
    for mode in ([], ["--json"]):
        assert main(["verify", str(obama), str(obama2), *mode, "--engines", str(engines_dir)]) == 0
        assert main(["verify", str(obama), str(biden), *mode, "--engines", str(engines_dir)]) == 1
        assert main(["verify", str(obama), str(tmp_path / "missing.jpg"), *mode, "--engines", str(engines_dir)]) == 2


@pytest.mark.parametrize("value", ["-1", "0"])
def test_threshold_must_be_positive(engines_dir, value, capsys):
    obama = str(photo("obama.jpg"))
    with pytest.raises(SystemExit) as exit_:
        main(["verify", obama, obama, "--threshold", value, "--engines", str(engines_dir)])
    assert exit_.value.code == 2 and "must be > 0" in capsys.readouterr().err


def test_unknown_precision_names_the_known_ones(engines_dir, capsys):
    obama = str(photo("obama.jpg"))
    with pytest.raises(SystemExit) as exit_:
        main(["embed", obama, "--precision", "int4", "--engines", str(engines_dir)])
    assert exit_.value.code == 2 and "fp32, fp16, int8, int8-trt" in capsys.readouterr().err


def test_backend_choice_only_with_verbose(engines_dir, capsys):
    obama = str(photo("obama.jpg"))
    assert main(["embed", obama, "--engines", str(engines_dir)]) == 0
    assert "backend" not in capsys.readouterr().err
    assert main(["-v", "embed", obama, "--engines", str(engines_dir)]) == 0
    err = capsys.readouterr().err
    assert "backend auto: chose" in err and "done in" in err
    assert main(["embed", obama, "-v", "--engines", str(engines_dir)]) == 0
    assert "backend auto: chose" in capsys.readouterr().err


def test_no_face_hint_names_upsample(engines_dir, tmp_path, capsys):
    small = tmp_path / "small.png"
    Image.open(photo("obama.jpg")).convert("RGB").resize((60, 60)).save(small)
    assert main(["embed", str(small), "--engines", str(engines_dir)]) == 0
    assert "--upsample 1" in capsys.readouterr().err


# -- chips and --annotate --------------------------------------------------------------------------------------------
def test_chips_writes_aligned_150px_chips_that_embed_like_the_photo(engines_dir, tmp_path, capsys):
    group = photo("kit_with_rose.jpg")
    out = tmp_path / "chips"
    assert main(["chips", str(group), "--out", str(out), "--engines", str(engines_dir)]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"{group.parent.name}-{group.stem}-0.png", f"{group.parent.name}-{group.stem}-1.png"]
    capsys.readouterr()
    assert main(["embed", "--aligned", *(str(out / f) for f in files), "--json", "--engines", str(engines_dir)]) == 0
    chips = json.loads(capsys.readouterr().out)
    assert main(["embed", str(group), "--json", "--engines", str(engines_dir)]) == 0
    faces = json.loads(capsys.readouterr().out)[0]["faces"]
    for chip, face in zip(chips, faces):
        assert load_image(out / files[0]).shape == (150, 150, 3)
        # PNG is lossless: the chip embeds as the photo's face did.
        assert np.linalg.norm(np.subtract(chip["embedding"], face["embedding"])) < 1e-4


def test_identify_annotate_draws_boxes(engines_dir, tmp_path, capsys):
    pytest.importorskip("cv2")
    gallery, src, out = tmp_path / "g.db", photo("obama2.jpg"), tmp_path / "annotated.jpg"
    assert main(["enroll", "--gallery", str(gallery), "obama", str(photo("obama.jpg")), "--engines", str(engines_dir)]) == 0
    assert main(["identify", "--gallery", str(gallery), str(src), "--annotate", str(out),
                 "--engines", str(engines_dir)]) == 0
    drawn, original = load_image(out).astype(int), load_image(src).astype(int)
    assert drawn.shape == original.shape and np.abs(drawn - original).mean() > 0.5


def test_video_output_says_its_codec_and_cleans_up_into_a_non_directory(a_file):
    cv2 = pytest.importorskip("cv2")
    from facestyle.errors import BadInputError
    from facestyle.video import VideoOutput, open_source

    with pytest.raises(BadInputError, match=r"file.jpg/out.mp4: cannot write a mp4v video there"):
        VideoOutput(a_file / "out.mp4", 10.0, (64, 48))
    out = a_file.parent / "out.mp4"
    with VideoOutput(out, 10.0, (64, 48)) as writer:
        for v in range(5):
            writer.write(np.full((48, 64, 3), 40 * v, np.uint8))
    assert writer.codec in ("avc1", "mp4v") and (writer.note is None) == (writer.codec == "avc1")
    with open_source(out) as source:
        assert sum(1 for _ in source) == 5
    fourcc = int(cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FOURCC))
    # What the decoder reports for each: FFmpeg names MPEG-4 part 2 "FMP4".
    assert fourcc.to_bytes(4, "little").decode().lower() in {"mp4v": ("mp4v", "fmp4"), "avc1": ("avc1", "h264")}[writer.codec]
    assert sorted(p.name for p in a_file.parent.iterdir()) == ["file.jpg", "out.mp4"]


def test_wrong_precision_gallery_error_names_the_reembed_that_fixes_it(engines_dir, tmp_path, capsys):
    import argparse
    import dataclasses

    from facestyle.cli.common import with_reembed_precision
    from facestyle.errors import GalleryModelMismatchError
    from facestyle.face.embedder import FaceEmbedder
    from facestyle.face.gallery import Gallery

    gallery = tmp_path / "g.db"
    assert main(["enroll", "--gallery", str(gallery), "obama", str(photo("obama.jpg")), "--engines", str(engines_dir)]) == 0
    fp16 = dataclasses.replace(FaceEmbedder.from_engines(engines_dir).identity, precision="fp16", sha256="0" * 64)
    with pytest.raises(GalleryModelMismatchError) as error:  # what opening it with an fp16 embedder raises
        Gallery.open(gallery, fp16, create=False)
    message = with_reembed_precision(str(error.value), argparse.Namespace(gallery=gallery, precision="fp16"))
    assert f"facestyle gallery reembed --gallery {gallery} --precision fp16" in message
    assert "\n" not in message
