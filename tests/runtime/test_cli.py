import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from facestyle.cli import main
from facestyle.face.embedder import FaceEmbedder


@pytest.fixture
def chip_files(tmp_path, astronaut_chip):
    a = tmp_path / "astronaut.png"
    Image.fromarray(astronaut_chip).save(a)
    b = tmp_path / "mirrored.png"
    Image.fromarray(astronaut_chip[:, ::-1].copy()).save(b)
    return a, b


def test_embed_aligned_json_matches_the_api(engines_dir, chip_files, astronaut_chip, capsys):
    code = main(["embed", "--aligned", *map(str, chip_files), "--json", "--engines", str(engines_dir)])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["file"] for o in out] == [str(p) for p in chip_files]
    assert all(len(o["embedding"]) == 128 for o in out)
    expected = FaceEmbedder.from_engines(engines_dir).embed(astronaut_chip)[0]
    np.testing.assert_allclose(out[0]["embedding"], expected, atol=1e-6)
    # A mirrored face is still the same person.
    assert np.linalg.norm(np.subtract(out[0]["embedding"], out[1]["embedding"])) < 0.6


def test_embed_console_script_exit_code_2_on_wrong_size(engines_dir, tmp_path):
    wrong = tmp_path / "big.png"
    Image.new("RGB", (160, 120)).save(wrong)
    done = subprocess.run(
        [sys.executable, "-m", "facestyle.cli", "embed", "--aligned", str(wrong), "--json", "--engines", str(engines_dir)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert f"{wrong}: aligned face chip must be 150x150 RGB" in done.stderr and "got 160x120" in done.stderr
    assert "Traceback" not in done.stderr
    # The JSON list still comes, the failed input in its place (the several-inputs contract).
    assert json.loads(done.stdout) == [{"file": str(wrong), "error": done.stderr.split("error: ", 1)[1].strip()}]


def test_embed_errors_name_the_input(engines_dir, tmp_path, capsys):
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    assert main(["embed", "--aligned", str(junk), "--engines", str(engines_dir)]) == 2
    assert f"{junk}: not a readable image" in capsys.readouterr().err
    assert main(["embed", "--aligned", str(junk), "--engines", str(tmp_path / "none")]) == 2
    assert "no manifest; run `facestyle build`" in capsys.readouterr().err
