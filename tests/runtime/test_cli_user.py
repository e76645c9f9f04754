"""The commands as a new user meets them: one-line argument errors, --version, JSON errors, bounded --upsample,
chip names that never collide, empty folders, closed pipes and stdouts, decoder warnings, label placement and
progress bars. Real photos and real built models where a model runs."""

import io
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import facestyle
from conftest import FACES, require_shared
from facestyle.cli import main, make_parser
from facestyle.labels import inside, overlaps, place_labels
from facestyle.progress import Progress


def photo(name: str):
    return next(p for p in require_shared(FACES).rglob(name))


def run_cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facestyle.cli", *map(str, args)], capture_output=True, text=True,
                          **kwargs)


# -- argument errors: one line, exit 2, before any model loads -------------------------------------------------------
@pytest.mark.parametrize("argv,line", [
    (["stylize", "a.jpg", "b.png", "--style", "wave", "--strength", "abc"],
     "facestyle stylize: error: --strength: expected a number, got 'abc'"),
    (["embed", "a.jpg", "--precision", "fp64"],
     "facestyle embed: error: --precision: unknown precision 'fp64'; known precisions: fp32, fp16, int8, int8-trt"),
    (["verify", "a.jpg", "b.jpg", "--threshold", "0"], "facestyle verify: error: --threshold: must be > 0, got 0"),
    (["verify", "a.jpg", "b.jpg", "--upsample", "9"], "facestyle verify: error: --upsample: expected 0 to 4, got 9"),
    (["identify", "--gallery", "g.db", "a.jpg", "--top-k", "0"], "facestyle identify: error: --top-k: must be >= 1, got 0"),
    (["watch", "--source", "0", "--every", "x"], "facestyle watch: error: --every: expected a whole number, got 'x'"),
    ([], "facestyle: error: give a command (`facestyle --help` lists them)"),
])
def test_every_argument_error_is_one_line(argv, line, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    captured = capsys.readouterr()
    assert exit_.value.code == 2 and captured.out == ""
    assert captured.err.startswith(line) and captured.err.count("\n") == 1 and "usage:" not in captured.err


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"facestyle {facestyle.__version__}\n"


@pytest.mark.parametrize("argv,expected", [
    (["gallery", "import", "--gallery", "g.db", "e.json"], {"action": "import", "name": "e.json", "gallery": "g.db"}),
    (["gallery", "remove", "--gallery", "g.db", "ada"], {"action": "remove", "name": "ada", "gallery": "g.db"}),
    (["gallery", "--gallery", "g.db", "export", "out.json"], {"action": "export", "name": "out.json"}),
    (["enroll", "ada", "--gallery", "g.db", "a.jpg", "b.jpg"], {"name": "ada", "images": ["a.jpg", "b.jpg"]}),
])
def test_options_are_accepted_before_or_after_the_positionals(argv, expected):
    args = make_parser().parse_args(argv)
    assert {key: getattr(args, key) for key in expected} == expected


def test_json_mode_says_the_error_on_stdout_too(tmp_path, capsys):
    missing = tmp_path / "missing.jpg"
    # Both checks come before the models load: the engines folder does not even exist.
    assert main(["verify", str(missing), str(missing), "--json", "--engines", str(tmp_path / "none")]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"error": f"{missing}: no such file"}
    assert captured.err == f"facestyle verify: error: {missing}: no such file\n"
    with pytest.raises(SystemExit):
        main(["verify", "a.jpg", "b.jpg", "--json", "--threshold", "-1"])
    assert json.loads(capsys.readouterr().out) == {"error": "--threshold: must be > 0, got -1"}


def test_input_mistakes_are_found_before_any_model_loads(tmp_path, capsys):
    no_engines = ["--engines", str(tmp_path / "none")]  # loading a model would fail naming this folder
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    checks = [
        (["embed", str(tmp_path / "empty")], f"{tmp_path / 'empty'}: no images in this folder"),
        (["verify", "a.jpg", "b.jpg", "--head"], "--head: needs --model RUN"),
        (["enroll", "--gallery", str(tmp_path / "g.db"), "a/b", "x.jpg"], "'a/b'"),
        (["gallery", "import", str(tmp_path / "missing.json"), "--gallery", str(tmp_path / "g.db")],
         f"{tmp_path / 'missing.json'}: no such file"),
        (["gallery", "remove", "--gallery", str(tmp_path / "g.db")], "remove: give the NAME of the person"),
        (["watch", "--source", str(tmp_path / "door.mp4")], f"{tmp_path / 'door.mp4'}: no such file"),
        (["stylize-video", str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4"), "--style", "wave"],
         f"{tmp_path / 'in.mp4'}: no such file"),
    ]
    for argv, message in checks:
        assert main([*argv, *no_engines]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and str(tmp_path / "none") not in err
    assert not (tmp_path / "g.db").exists()  # no gallery was created on the way


# -- outputs: closed pipes and a closed stdout -----------------------------------------------------------------------
def test_a_reader_closing_the_pipe_ends_the_command_quietly(tmp_path):
    child = subprocess.Popen([sys.executable, "-m", "facestyle.cli", "styles", "--engines", str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()  # like `| head` that has read what it wanted, before the command writes
    err = child.stderr.read()
    child.stderr.close()
    assert child.wait() == 141 and err == b""  # 128 + SIGPIPE, as the shell reports `yes | head`


def test_a_closed_stdout_is_an_error_not_a_silent_success(tmp_path):
    closed = run_cli("styles", "--engines", tmp_path, preexec_fn=lambda: os.close(1))
    assert closed.returncode == 2
    assert closed.stderr == "facestyle styles: error: standard output: closed, nothing can be written to it\n"


# -- --upsample bounded by the decoder's pixel limit ----------------------------------------------------------------
def test_upsample_that_would_pass_the_pixel_limit_is_refused_per_photo(engines_dir, tmp_path, capsys):
    big = tmp_path / "big.png"
    Image.new("RGB", (3000, 3000), (90, 90, 90)).save(big)  # 9 Mpx: doubled twice, 144 Mpx
    assert main(["embed", str(big), "--upsample", "2", "--json", "--engines", str(engines_dir)]) == 2
    error = json.loads(capsys.readouterr().out)[0]["error"]
    assert error.startswith(f"{big}: upsample 2: the 3000x3000 image doubled 2 times would be 144,000,000 pixels")
    assert error.endswith("at most upsample 1 for it")


# -- chips: one name per photo, never an input overwritten ----------------------------------------------------------
def test_chips_of_same_named_photos_in_different_folders_all_survive(engines_dir, tmp_path, capsys):
    for folder, name, source in (("s1", "a.jpg", "obama.jpg"), ("s2", "a.jpg", "biden.jpg"), ("s1", "a.png", "obama2.jpg")):
        (tmp_path / folder).mkdir(exist_ok=True)
        Image.open(photo(source)).save(tmp_path / folder / name)
    out = tmp_path / "chips"
    assert main(["chips", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(out), "--json",
                 "--engines", str(engines_dir)]) == 0
    results = json.loads(capsys.readouterr().out)
    chips = [face["chip"] for r in results for face in r["faces"]]
    assert chips == [str(out / "s1-a-0.png"), str(out / "s1-a~2-0.png"), str(out / "s2-a-0.png")]
    assert sorted(p.name for p in out.iterdir()) == ["s1-a-0.png", "s1-a~2-0.png", "s2-a-0.png"]
    assert len({(out / c).read_bytes() for c in os.listdir(out)}) == 3  # three different faces


def test_chips_never_overwrite_an_input(engines_dir, tmp_path, capsys):
    folder = tmp_path / "s"
    folder.mkdir()
    shutil.copy(photo("obama.jpg"), folder / "a.jpg")
    shutil.copy(photo("biden.jpg"), folder / "s-a-0.png")  # exactly the name a.jpg's chip would get in --out s
    before = (folder / "s-a-0.png").read_bytes()
    assert main(["chips", str(folder), "--out", str(folder), "--engines", str(engines_dir)]) == 2
    assert "is that of an input photo, which is never overwritten" in capsys.readouterr().err
    assert (folder / "s-a-0.png").read_bytes() == before


# -- decoder warnings ------------------------------------------------------------------------------------------------
@pytest.fixture
def damaged_exif(tmp_path):
    """A JPEG whose 40 EXIF tags all claim more data than the file holds: Pillow warns once per tag."""
    exif = Image.Exif()
    for i in range(40):
        exif[0x9000 + i] = f"value {i}"
    raw = bytearray(exif.tobytes())
    for k in range(struct.unpack_from(">H", raw, 14)[0]):
        struct.pack_into(">I", raw, 16 + 12 * k + 4, 100_000)
    path = tmp_path / "damaged.jpg"
    Image.new("RGB", (64, 48), (120, 80, 40)).save(path, exif=bytes(raw))
    return path


def test_decoder_warnings_become_at_most_one_line_naming_the_file(engines_dir, damaged_exif, capsys):
    assert main(["embed", str(damaged_exif), "--engines", str(engines_dir)]) == 0
    assert "Skipping tag" not in capsys.readouterr().err  # damaged metadata, the pixels fine: nothing by default
    assert main(["-v", "embed", str(damaged_exif), "--engines", str(engines_dir)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "tag" in line.lower()]
    assert len(lines) == 1 and lines[0].endswith("(and 39 more like it)")
    assert lines[0].startswith(f"facestyle embed: {damaged_exif}: damaged metadata skipped, pixels decoded: ")


# -- labels: inside the image, none over another ---------------------------------------------------------------------
def test_labels_stay_inside_the_image_and_apart():
    width, height = 320, 200
    boxes = [(-10, -5, 40, 40), (20, 2, 70, 50), (25, 10, 75, 60),  # at the top-left corner, close together
             (290, 170, 330, 215), (280, 160, 318, 199),  # past the bottom-right corner
             (140, 0, 180, 199)]  # the whole height: no room above or below
    sizes = [(120, 22), (90, 22), (150, 22), (100, 22), (60, 22), (500, 22)]  # the last wider than the image
    fps = [(0, 0, 70, 22)]  # a counter in the top-left corner
    rects = place_labels(boxes, sizes, width, height, fps)
    everything = fps + rects
    assert all(inside(r, width, height) for r in everything)
    assert not any(overlaps(a, b) for i, a in enumerate(everything) for b in everything[i + 1:])
    assert rects[0] == (0, 41, 120, 22)  # no room above a box at the top: just below it, moved into the image
    assert rects[5][2] == width  # cut to the image


def test_annotate_draws_every_label_inside_the_frame():
    pytest.importorskip("cv2")
    from facestyle.streams.annotate import annotate

    frame = np.zeros((120, 160, 3), np.uint8)
    faces = [{"box": [130, 100, 170, 140], "identity": "somebody-with-a-long-name", "distance": 0.42},
             {"box": [0, 0, 30, 30], "identity": "unknown", "distance": 0.9}]
    drawn = annotate(frame, faces, fps=25.0)
    # The corner face's label is drawn in full: its filled box reaches the frame's right edge, not beyond.
    assert drawn.shape == frame.shape and drawn[:, -1].any() and drawn[-1].any()


# -- progress ----------------------------------------------------------------------------------------------------------
class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("setting,stream,shown", [
    (None, io.StringIO, False), (None, Terminal, True), ("1", io.StringIO, True), ("0", Terminal, False)])
def test_progress_shows_on_a_terminal_or_when_forced(monkeypatch, setting, stream, shown):
    if setting is None:
        monkeypatch.delenv("FACESTYLE_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("FACESTYLE_PROGRESS", setting)
    out = stream()
    with Progress(4, "working", stream=out, delay=0.0) as bar:
        for _ in range(4):
            bar.update()
    assert ("working [" in out.getvalue() and "4/4" in out.getvalue()) == shown


def test_progress_waits_its_delay_before_drawing(monkeypatch):
    monkeypatch.delenv("FACESTYLE_PROGRESS", raising=False)
    out = Terminal()
    with Progress(3, "working", stream=out, delay=3600.0) as bar:  # work that ends long before the delay
        for _ in range(3):
            bar.update()
    assert out.getvalue() == ""


def test_embed_over_a_folder_shows_progress_when_forced(engines_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACESTYLE_PROGRESS", "1")
    for name in ("obama.jpg", "biden.jpg"):
        shutil.copy(photo(name), tmp_path / name)
    assert main(["embed", str(tmp_path), "--engines", str(engines_dir)]) == 0
    assert "embedding [" in capsys.readouterr().err
