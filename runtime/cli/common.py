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
AUTO_HELP = "auto = TensorRT > onnxruntime CUDA > onnxruntime CPU, the choice logged (default: auto)"


def add_engines_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engines", type=Path, default=None, help=ENGINES_HELP)


def add_backend_option(p: argparse.ArgumentParser, help: str | None = AUTO_HELP) -> None:
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto", help=help)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--engines, --precision, --backend, --upsample: the options of every command that runs the face models."""
    add_engines_option(p)
    # No argparse choices: an unknown precision is reported by the model loader, naming the missing manifest.
    p.add_argument("--precision", default="fp32",
                   help=f"embedding model variant: {', '.join(PRECISION_NAMES)} (default: fp32)")
    add_backend_option(p)
    p.add_argument("--upsample", type=int, default=0, help="detector upsampling, like dlib's (default: 0)")


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
    """The face analyzer the model options name."""
    from ..face.analyzer import FaceAnalyzer

    return FaceAnalyzer.from_engines(args.engines, precision=args.precision, upsample=args.upsample,
                                     backend=args.backend)


def open_gallery(args: argparse.Namespace, create: bool):
    """(analyzer, gallery): the gallery file of ``--gallery``, opened for the analyzer's embedding model."""
    from ..face.gallery import Gallery

    analyzer = open_analyzer(args)
    search = getattr(args, "search", "exact")
    return analyzer, Gallery.open(args.gallery, analyzer.embedder.identity, create=create, search=search)
