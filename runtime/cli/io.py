"""The CLI's inputs and outputs contract: folders expanded into their images, outputs checked before any work,
per-input results where a failing input takes its place as ``{"file", "error"}``.

Only the standard library at import time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from ..errors import BadInputError, FacestyleError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
NO_FACE_HINT = "no face found (faces under ~80 px need --upsample 1)"


def expand_inputs(paths: Iterable[str]) -> list[str]:
    """Each path as given; a folder becomes its images (by extension), recursively, sorted."""
    out: list[str] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            out.extend(str(f) for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(str(path))
    return out


def one_line(message: str) -> str:
    return " ".join(str(message).split())


def error_entry(file: str, exc: Exception) -> dict:
    """``{"file", "error"}``: the error in one line that names the file."""
    message = one_line(exc)
    return {"file": file, "error": message if file in message else f"{file}: {message}"}


def per_input(files: list[str], work: Callable[[str], dict]) -> list[dict]:
    """``work(file)`` for every file; a FacestyleError or OSError becomes that file's error entry."""
    results = []
    for file in files:
        try:
            results.append(work(file))
        except (FacestyleError, OSError) as exc:
            results.append(error_entry(file, exc))
    return results


def report_errors(command: str, results: list[dict]) -> int:
    """Text mode: one stderr line per failed input. Returns the exit code (2 if any failed)."""
    failed = [r for r in results if "error" in r]
    for r in failed:
        print(f"facestyle {command}: error: {r['error']}", file=sys.stderr)
    return 2 if failed else 0


def check_output(path: str | Path, inputs: Iterable[str | Path] = (), overwrite: bool = False,
                 folder: bool = False) -> Path:
    """Refuse an output that cannot be written (or that is one of the inputs) before any work is done.

    ``folder``: the output is a directory, created (with its parents) if absent. Otherwise the file's folder must
    exist and accept a new file (probed with a temporary file, removed at once).
    """
    path = Path(path)
    if not overwrite:
        for given in inputs:
            if Path(given).exists() and path.exists() and os.path.samefile(given, path):
                raise BadInputError(f"{path}: is also an input; pass --overwrite to replace it")
    if folder:
        if path.exists() and not path.is_dir():
            raise BadInputError(f"{path}: cannot write there (exists and is not a folder)")
        _check_parents(path, path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInputError(f"{path}: cannot create the folder ({one_line(exc.strerror or exc)})") from None
        target = path
    else:
        if path.is_dir():
            raise BadInputError(f"{path}: cannot write there (it is a folder; give a file name)")
        _check_parents(path.parent, path)
        if not path.parent.is_dir():
            raise BadInputError(f"{path}: cannot write there (folder {path.parent} does not exist)")
        target = path.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".facestyle-probe.", dir=target)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BadInputError(f"{path}: cannot write there ({one_line(exc.strerror or exc)})") from None
    return path


def _check_parents(folder: Path, name: Path) -> None:
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise BadInputError(f"{name}: cannot write there ({parent} is a file, not a folder)")
            return


def add_overwrite_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="allow an output that is also an input")


def positive_float(text: str) -> float:
    """argparse type: a float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value
