"""What several commands share: the model options, the comma-list argument type, and the loaders that open
the face analyzer and the gallery from those options.

Only argparse-level code runs at import time; the runtime's models are imported inside the loaders.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..capabilities import BACKEND_CHOICES, PRECISION_NAMES
from ..errors import MissingDependencyError

ENGINES_HELP = "artifact folder (default: $FACESTYLE_ENGINES or ./engines)"
AUTO_HELP = "auto = TensorRT > onnxruntime CUDA > onnxruntime CPU, the choice shown with -v (default: auto)"


def add_engines_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engines", type=Path, default=None, help=ENGINES_HELP)


def add_backend_option(p: argparse.ArgumentParser, help: str | None = AUTO_HELP) -> None:
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto", help=help)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--engines, --precision, --backend, --upsample: the options of every command that runs the face models."""
    add_engines_option(p)
    add_precision_option(p, "embedding model variant")
    add_backend_option(p)
    p.add_argument("--upsample", type=upsample_times, default=0, metavar="N",
                   help=f"detector upsampling, like dlib's: 0 to {MAX_UPSAMPLE}, each doubling the image's sides, "
                   "~80 px faces at 0, ~40 at 1, ~20 at 2 (default: 0; the doubled image must stay within the "
                   "decoder's 64-megapixel limit)")
    p.add_argument("--detector-precision", default="fp32", type=precision_name,
                   help="detector variant (default fp32: dlib's boxes exactly); int8 (built with `facestyle build "
                   "--precision int8`) is ~1.3x faster (47 vs 63 ms at 640 px here) and keeps the boxes "
                   "(recall 1.0, IoU >= 0.95, in its manifest)")
    p.add_argument("--model", type=Path, metavar="RUN",
                   help="the embedding a `facestyle train-embedding` run exported (RUN/engines), instead of the built one")


MAX_UPSAMPLE = 4  # faces down to ~5 px: nothing smaller is a face, and each step costs 4x the time and memory


def upsample_times(text: str) -> int:
    """argparse type: how many times the detector doubles the image, 0 to MAX_UPSAMPLE."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number 0 to {MAX_UPSAMPLE}, got {text!r}") from None
    if not 0 <= value <= MAX_UPSAMPLE:
        raise argparse.ArgumentTypeError(
            f"expected 0 to {MAX_UPSAMPLE}, got {value} (each step doubles the image's sides: 4x the time and "
            f"memory; {MAX_UPSAMPLE} already finds faces down to ~5 px)")
    return value


def precision_name(text: str) -> str:
    """argparse type: one of the known precisions (facestyle.capabilities), the error listing them."""
    if text not in PRECISION_NAMES:
        raise argparse.ArgumentTypeError(f"unknown precision {text!r}; known precisions: {', '.join(PRECISION_NAMES)}")
    return text


def add_precision_option(p: argparse.ArgumentParser, what: str = "model variant") -> None:
    # Not argparse choices: the error then names the known precisions in one line; a known one that is not built
    # is reported by the model loader, naming the missing manifest.
    p.add_argument("--precision", default="fp32", type=precision_name,
                   help=f"{what}: {', '.join(PRECISION_NAMES)} (default: fp32)")


def comma_choices(choices: tuple[str, ...]):
    """argparse type: 'a,b' -> ('a', 'b'), each one of ``choices``."""

    def parse(text: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))
        unknown = [item for item in items if item not in choices]
        if not items or unknown:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(choices)}, got {text!r}")
        return items

    return parse


def export_extra_missing(command: str, exc: ImportError) -> MissingDependencyError:
    """The error for a command that needs the build side (torch, onnx) where only the runtime is installed."""
    return MissingDependencyError(
        f"{command} needs the export extra ({exc.name} is missing): pip install 'facestyle[export]'"
    )


def open_analyzer(args: argparse.Namespace):
    """The face analyzer the model options name (with ``--triton URL``: its networks on that server)."""
    from ..face.analyzer import FaceAnalyzer

    if getattr(args, "triton", None):
        return triton_analyzer(args)
    return FaceAnalyzer.from_engines(args.engines, precision=args.precision, upsample=args.upsample,
                                     backend=args.backend, embedder_engines=trained_engines(args),
                                     detector_precision=getattr(args, "detector_precision", "fp32"))


def triton_analyzer(args: argparse.Namespace):
    """``--triton URL``: the detector and the embedder on the server's face-detect and face-embed, the
    landmarks (numpy) from --engines in this process."""
    from ..errors import BadInputError
    from ..face.landmarks import ShapePredictor
    from ..triton.client import TritonFaces

    if getattr(args, "model", None):
        raise BadInputError(f"--model {args.model} with --triton: the server's face-embed embeds (expected the "
                            "trained model served in the Triton repository, or no --triton)")
    faces = TritonFaces(args.triton, upsample=args.upsample)
    try:
        return faces.analyzer(ShapePredictor.from_engines(args.engines))
    except BaseException:
        faces.close()
        raise


def trained_engines(args: argparse.Namespace) -> Path | None:
    """``--model RUN`` -> RUN/engines, checked to hold a trained face-embed; None without --model."""
    run = getattr(args, "model", None)
    if run is None:
        return None
    from ..errors import BadInputError

    engines = Path(run) / "engines"
    if not (engines / "face-embed").is_dir():
        raise BadInputError(f"--model {run}: no trained embedding in it ({engines / 'face-embed'} is missing; "
                            "`facestyle train-embedding --out RUN` writes it when training ends)")
    return engines


def open_gallery(args: argparse.Namespace, create: bool, write: bool = True):
    """(analyzer, gallery): the gallery of ``--gallery``, opened for the analyzer's embedding model
    (``write=False``: for reading only, never created or changed)."""
    from ..errors import GalleryModelMismatchError
    from ..face.gallery import Gallery

    analyzer = open_analyzer(args)
    search = getattr(args, "search", "exact")
    try:
        return analyzer, Gallery.open(args.gallery, analyzer.embedder.identity, create=create, search=search,
                                        write=write)
    except GalleryModelMismatchError as exc:
        raise GalleryModelMismatchError(with_reembed_precision(str(exc), args)) from None


def shown(location: str) -> str:
    """The gallery as messages name it: a PostgreSQL URL without its password."""
    from ..face.gallery.postgres import is_url, normalise_url, redact

    return redact(normalise_url(location)) if is_url(location) else str(location)


def with_reembed_precision(message: str, args: argparse.Namespace) -> str:
    """The wrong-model message with the `gallery reembed` that fixes it for this command: its --precision added."""
    command = f"facestyle gallery reembed --gallery {shown(args.gallery)}"
    model = f" --model {args.model}" if getattr(args, "model", None) else ""
    fix = f"{command} --precision {args.precision}{model}"
    return message.replace(command, fix) if command in message and fix not in message else f"{message} ({fix})"
