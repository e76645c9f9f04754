"""Where build-time data comes from: a folder the caller names or $FACESTYLE_DATA, never a path beside the package."""

from pathlib import Path

from conftest import SHARED_DATA, require_shared
from facestyle.export.datasets import content_photos, default_data_dir, lfw_dir


def test_without_a_named_folder_there_is_no_data_folder(monkeypatch):
    require_shared(SHARED_DATA / "lfw-view1")  # present beside the repository, and still not used
    monkeypatch.delenv("FACESTYLE_DATA", raising=False)
    assert default_data_dir() is None and lfw_dir(None) is None
    images, source = content_photos(2, 32, None)
    assert len(images) == 2 and source.startswith("scikit-image data photos (no data folder: $FACESTYLE_DATA is unset)")


def test_the_folder_comes_from_the_caller_or_the_environment(monkeypatch, tmp_path):
    require_shared(SHARED_DATA / "lfw-view1")
    monkeypatch.setenv("FACESTYLE_DATA", str(SHARED_DATA))
    assert default_data_dir() == SHARED_DATA and lfw_dir(None) == SHARED_DATA / "lfw-view1"
    assert lfw_dir(tmp_path) is None  # the caller's folder wins, and it holds no LFW
    assert lfw_dir(Path(SHARED_DATA)) == SHARED_DATA / "lfw-view1"
