"""Stylize's options, on real photos and the built style: strokes sized to the picture, tiny photos, the photo's
colours, gentle faces, and a folder of photos."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facestyle.errors import BadInputError, MissingDependencyError
from facestyle.images import load_image
from facestyle.style.looks import rgb_to_ycbcr

pytest.importorskip("torch")  # the fixtures build a shipped style and the face models with the export package

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
WIDE_PHOTO = DATA / "faces/face_recognition_examples/examples/knn_examples/test/obama_and_biden.jpg"  # 2000x1428
PORTRAIT = DATA / "faces/face_recognition_examples/examples/obama.jpg"  # 910x1137, one face
CONTENT = DATA / "content/test_photos"


def shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data folder, ../shared/data)")
    return path


def sized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.LANCZOS))


@pytest.fixture(scope="module")
def stylizer(style_engines, engines_dir):
    from facestyle.style.stylizer import Stylizer

    root, name = style_engines
    return Stylizer.from_engines(name, root, face_engines=engines_dir)


@pytest.fixture(scope="module")
def amber():
    return sized(load_image(shared(CONTENT / "amber.jpg")), 384, 384)


def test_a_large_photo_gets_the_strokes_of_its_1000_px_version(stylizer):
    photo = load_image(shared(WIDE_PHOTO))  # 2000x1428
    half = sized(photo, 1000, 714)
    small = lambda image: sized(image, 500, 357).astype(np.float32)
    large, reference = small(stylizer.stylize(photo)), small(stylizer.stylize(half))
    stylizer.working_side, saved = 4000, stylizer.working_side  # the network at the photo's own size
    try:
        native = small(stylizer.stylize(photo))
    finally:
        stylizer.working_side = saved
    same, different = np.abs(large - reference).mean(), np.abs(native - reference).mean()
    print(f"2000 px vs its 1000 px version, both at 500 px: mean abs diff {same:.2f} (at its own size: {different:.2f})")
    # Measured on composition_vii: 0.24 against 33.6 at the photo's own size, where the strokes are half as large.
    assert same < 4 and different > 4 * same


def test_a_larger_stroke_scale_is_a_smaller_working_size(stylizer, amber):
    from facestyle.style.resolution import working_size

    assert working_size(384, 512) == (384, 512)  # a photo under the working size is stylised as it is
    assert working_size(3000, 4000) == (750, 1000)
    assert working_size(3000, 4000, stroke_scale=2) == (375, 500)
    assert working_size(30, 40) == (192, 256)  # tiny photos: the minimum working size
    coarse, fine = stylizer.stylize(amber, stroke_scale=2), stylizer.stylize(amber)
    edges = lambda image: np.abs(np.diff(image.astype(np.float32), axis=1)).mean()
    print(f"mean horizontal step: stroke scale 1 {edges(fine):.1f}, 2 {edges(coarse):.1f}")
    assert edges(coarse) < 0.8 * edges(fine)  # larger strokes: fewer edges per pixel


@pytest.mark.parametrize("scale", [0.2, 4.5, float("nan")])
def test_a_stroke_scale_out_of_bounds_is_refused(stylizer, amber, scale):
    with pytest.raises(BadInputError, match=r"stroke scale .*: expected 0.25 to 4"):
        stylizer.stylize(amber, stroke_scale=scale)


def test_the_cli_refuses_a_stroke_scale_out_of_bounds(style_engines, tmp_path, capsys):
    from facestyle.cli import main

    root, name = style_engines
    with pytest.raises(SystemExit) as exit_:
        main(["stylize", "--engines", str(root), "--style", name, "in.jpg", str(tmp_path / "o.jpg"), "--stroke-scale", "9"])
    assert exit_.value.code == 2
    assert "facestyle stylize: error: --stroke-scale: expected 0.25 to 4, got 9" in capsys.readouterr().err


def test_a_tiny_photo_keeps_the_colours_of_the_photo_stylised_larger(stylizer):
    photo = load_image(shared(CONTENT / "golden_gate.jpg"))
    tiny = sized(photo, 40, 30)
    expected = sized(stylizer.stylize(sized(photo, 400, 300)), 40, 30).reshape(-1, 3).mean(0)
    got = stylizer.stylize(tiny).reshape(-1, 3).mean(0)
    padded = stylizer._stylize_pixels(tiny).reshape(-1, 3).mean(0)  # the network on it as it is, mirrored to 64 px
    print(f"mean colour off by {np.abs(got - expected).max():.1f} (mirrored to 64 px: {np.abs(padded - expected).max():.1f})")
    # Measured on composition_vii: 1.1 against 5.2 for the network on the tiny photo itself (starry_night: 0.5, 9.4).
    assert np.abs(got - expected).max() < 3
    assert np.abs(padded - expected).max() > 4


def test_preserve_colour_keeps_the_photos_chroma(stylizer, amber):
    chroma = lambda image: rgb_to_ycbcr(image).reshape(-1, 3).mean(0)[1:]
    kept, plain = stylizer.stylize(amber, preserve_colour=True), stylizer.stylize(amber)
    off, plain_off = np.abs(chroma(kept) - chroma(amber)).max(), np.abs(chroma(plain) - chroma(amber)).max()
    print(f"mean Cb/Cr off the photo's by {off:.2f} (plain stylisation: {plain_off:.1f})")
    assert off < 2 and plain_off > 6  # measured on composition_vii: 0.27 against 9.7 (starry_night: 0.75, 24.6)
    luma = lambda image: rgb_to_ycbcr(image)[..., 0]
    assert np.corrcoef(luma(kept).ravel(), luma(plain).ravel())[0, 1] > 0.95  # the strokes are the painting's


def test_keep_faces_leaves_the_person_recognisable(stylizer, engines_dir):
    from facestyle.face.analyzer import FaceAnalyzer

    photo = sized(load_image(shared(PORTRAIT)), 455, 568)
    analyzer = FaceAnalyzer.from_engines(engines_dir)
    original = analyzer.faces(photo)[0]

    def distance_to_photo(image):
        faces = analyzer.faces(image)
        if not faces:
            return float("inf")  # stylised beyond finding a face at all
        nearest = min(faces, key=lambda f: np.abs(f.box - original.box).sum())
        return float(np.linalg.norm(nearest.embedding - original.embedding))

    gentle, full = distance_to_photo(stylizer.stylize(photo, keep_faces=True)), distance_to_photo(stylizer.stylize(photo))
    print(f"embedding distance to the photo: keep faces {gentle:.3f}, plain {full:.3f}")
    # Measured on composition_vii: 0.27 with keep_faces, 0.48 plainly stylised (dlib's threshold: 0.6).
    assert gentle < 0.6 and gentle < full - 0.1


def test_keep_faces_paints_the_rest_fully(stylizer, engines_dir):
    photo = sized(load_image(shared(PORTRAIT)), 455, 568)
    gentle, full = stylizer.stylize(photo, keep_faces=True), stylizer.stylize(photo)
    assert np.array_equal(gentle[-60:], full[-60:])  # the bottom rows (the suit) are the same painting


def test_keep_faces_without_the_face_engines_is_one_typed_line(style_engines, amber, tmp_path):
    from facestyle.style.stylizer import Stylizer

    root, name = style_engines
    stylizer = Stylizer.from_engines(name, root, face_engines=tmp_path)
    with pytest.raises(MissingDependencyError, match=r"keep faces: needs the face engines \(face-detect\) in .*facestyle build"):
        stylizer.stylize(amber, keep_faces=True)


def test_a_folder_is_stylised_photo_by_photo(style_engines, amber, tmp_path, capsys):
    from facestyle.cli import main

    root, name = style_engines
    photos, out = tmp_path / "photos", tmp_path / "styled"
    photos.mkdir()
    out.mkdir()
    Image.fromarray(amber).save(photos / "a.jpg")
    Image.fromarray(amber[:100, :150]).save(photos / "c.png")
    (photos / "b.jpg").write_bytes(b"\xff\xd8 a truncated JPEG")
    (photos / "notes.txt").write_text("not an image")
    (out / "c.png").write_bytes(b"an earlier output")
    code = main(["stylize", "--engines", str(root), "--style", name, str(photos), str(out)])
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert code == 2
    assert [sorted(line) for line in lines[:3]] == [["file", "out"], ["error", "file"], ["file", "skipped"]]
    assert lines[1]["file"].endswith("b.jpg") and "b.jpg" in captured.err
    assert lines[3]["summary"] == {"written": 1, "skipped": 1, "failed": 1}
    assert load_image(out / "a.jpg").shape == amber.shape
    assert (out / "c.png").read_bytes() == b"an earlier output"  # not overwritten
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "c.png"]  # no temporary files left
    assert main(["stylize", "--engines", str(root), "--style", name, str(photos), str(out), "--overwrite"]) == 2
    assert load_image(out / "c.png").shape == (100, 150, 3)


@pytest.mark.parametrize("inside", [".", "sub"])
def test_a_folders_outputs_never_go_into_it(style_engines, amber, tmp_path, capsys, inside):
    from facestyle.cli import main

    root, name = style_engines
    Image.fromarray(amber).save(tmp_path / "a.jpg")
    assert main(["stylize", "--engines", str(root), "--style", name, str(tmp_path), str(tmp_path / inside)]) == 2
    assert "the output folder is" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"]
