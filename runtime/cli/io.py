"""The CLI's inputs and outputs contract: folders expanded into their images, outputs checked before any work,
per-input results where a failing input takes its place as ``{"file", "error"}``.

Only the standard library at import time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import BadInputError, FacestyleError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
NO_FACE_HINT = "no face found (faces under ~80 px need --upsample 1)"


def expand_inputs(paths: Iterable[str]) -> list[str]:
    """Each path as given; a folder becomes its images (by extension), recursively, sorted. A folder without
    images is an error naming it (before any work), not a command that silently does nothing."""
    out: list[str] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            images = [str(f) for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
            if not images:
                raise BadInputError(f"{path}: no images in this folder (looked for {', '.join(IMAGE_SUFFIXES)}, "
                                    "in its subfolders too)")
            out.extend(images)
        else:
            out.append(str(path))
    return out


def chip_names(files: list[str]) -> dict[str, str]:
    """Each photo's chip name stem: ``<folder>-<stem>`` (``s1/a.jpg`` -> ``s1-a``), so photos of the same name in
    different folders keep their own chips. Where two inputs would still share one (``a.jpg`` and ``a.png``, or
    ``x/s/a.jpg`` and ``y/s/a.jpg``), the later one in input order gets ``~2`` (``~3``, ...): deterministic, and no
    two photos ever write the same chip. The chips are then ``<name>-<i>.png``."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for file in files:
        if file in names:
            continue
        path = Path(file).resolve()
        base = f"{path.parent.name}-{path.stem}" if path.parent.name else path.stem
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}~{n}"
        used.add(name)
        names[file] = name
    return names


def one_line(message: str) -> str:
    return " ".join(str(message).split())


def error_entry(file: str, exc: Exception) -> dict:
    """``{"file", "error"}``: the error in one line that names the file."""
    message = one_line(exc)
    return {"file": file, "error": message if file in message else f"{file}: {message}"}


def per_input(files: list[str], work: Callable[[str], dict], label: str | None = None) -> list[dict]:
    """``work(file)`` for every file; a FacestyleError or OSError becomes that file's error entry. With
    ``label``, a progress bar on stderr (facestyle.progress: on a terminal, once the work passes ~2 s)."""
    from ..progress import Progress

    results = []
    with Progress(len(files), label or "", enabled=label is not None) as bar:
        for file in files:
            try:
                results.append(work(file))
            except BrokenPipeError:
                raise
            except (FacestyleError, OSError) as exc:
                results.append(error_entry(file, exc))
            bar.update()
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


def whole_number(minimum: int):
    """argparse type: an integer >= ``minimum`` (a count checked when the arguments are, before any model loads)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value

    return parse


def number_between(low: float, high: float, low_included: bool = True, high_included: bool = True):
    """argparse type: a number from ``low`` to ``high``, each bound itself allowed only if ``*_included``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        above = low <= value if low_included else low < value
        below = value <= high if high_included else value < high
        if not (above and below):
            start = f"{low:g}" if low_included else f"above {low:g}"
            end = f"{high:g}" if high_included else f"below {high:g}"
            raise argparse.ArgumentTypeError(f"expected {start} to {end}, got {text}")
        return value

    return parse
