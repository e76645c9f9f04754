"""One rule for every cache folder: $FACESTYLE_CACHE, else the user's cache folder for facestyle."""

import sys

import pytest

from facestyle.paths import cache_dir


def test_every_cache_is_under_facestyle_cache_when_it_is_set(monkeypatch, tmp_path):
    from facestyle.backends import ort_cache
    from facestyle.face.evaluation import default_cache_path
    from facestyle.triton.local import default_cache

    monkeypatch.setenv("FACESTYLE_CACHE", str(tmp_path))
    assert cache_dir("chips") == tmp_path / "chips" and cache_dir() == tmp_path
    assert default_cache_path() == tmp_path / "embeddings.sqlite"
    assert ort_cache.cache_dir() == tmp_path / "ort-optimized"
    assert default_cache() == tmp_path / "triton-venv"


@pytest.mark.skipif(sys.platform != "linux", reason="the XDG folders are Linux's")
def test_without_it_the_users_cache_folder_is_used(monkeypatch, tmp_path):
    monkeypatch.delenv("FACESTYLE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("ort-optimized") == tmp_path / "xdg" / "facestyle" / "ort-optimized"
    monkeypatch.setenv("FACESTYLE_CACHE", "")  # empty: not set
    assert cache_dir() == tmp_path / "xdg" / "facestyle"
