"""A style is the name of a built style, never a path: nothing outside the engines folder is loaded."""

import shutil

import pytest

from facestyle.errors import BadInputError

pytest.importorskip("torch")  # the fixture builds a shipped style with the export package


@pytest.fixture()
def outside(style_engines, tmp_path):
    """An engines folder holding the built style, and a copy of that style in a folder beside it."""
    root, name = style_engines
    engines = tmp_path / "engines"
    shutil.copytree(root / f"style-{name}", engines / f"style-{name}")
    shutil.copytree(root / f"style-{name}", tmp_path / "elsewhere" / "x")
    return engines, name


def test_a_path_through_a_style_folder_is_refused(outside):
    from facestyle.style.stylizer import Stylizer

    engines, name = outside
    with pytest.raises(BadInputError, match=rf"style '{name}/\.\./\.\./elsewhere/x' \(fp32\) is not built in .*; "
                                            rf"built styles: {name}$"):
        Stylizer.from_engines(f"{name}/../../elsewhere/x", engines)


def test_a_linked_style_folder_inside_the_engines_folder_is_a_built_style(outside):
    """The engines folder's own entries may be links (an engines folder assembled from several builds)."""
    from facestyle.style.stylizer import Stylizer

    engines, name = outside
    (engines / "style-linked").symlink_to(engines.parent / "elsewhere" / "x", target_is_directory=True)
    assert Stylizer.from_engines("linked", engines).name == name


def test_an_unbuilt_precision_is_refused_naming_the_styles(outside):
    from facestyle.style.stylizer import Stylizer

    engines, name = outside
    with pytest.raises(BadInputError, match=rf"style '{name}' \(\.\./fp32\) is not built in .*; built styles: {name}$"):
        Stylizer.from_engines(name, engines, precision="../fp32")


def test_the_cli_prints_one_line_listing_the_styles(outside, tmp_path, capsys):
    from facestyle.cli import main

    engines, name = outside
    photo = tmp_path / "p.png"
    from PIL import Image

    Image.new("RGB", (64, 64), (120, 90, 60)).save(photo)
    code = main(["stylize", "--engines", str(engines), "--style", f"{name}/../../elsewhere/x", str(photo),
                 str(tmp_path / "out.jpg")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("facestyle stylize: error: style ")
    assert err[0].endswith(f"built styles: {name}") and not (tmp_path / "out.jpg").exists()
