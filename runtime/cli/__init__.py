"""The ``facestyle`` command: the top-level parser, the exit codes and the per-command backend logging.

Each command group lives in its own module beside its parser (see ``COMMAND_MODULES``); a module defines
``register(subparsers)``, which adds its sub-commands and points each one at the handler next to it. To add a
command group, write the module and name it in ``COMMAND_MODULES``. Every FacestyleError becomes exit code 2
and one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import FacestyleError

# Registration order is the order `facestyle --help` lists the commands in.
COMMAND_MODULES = ("build", "faces", "gallery", "style", "streams", "bench", "lfw", "serve", "triton", "inspect")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facestyle", description="Face verification and fast neural style, exported and deployed."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        # Command modules import only argparse-level code at import time, so `facestyle --help` stays fast.
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def _backend_log_handler(command: str) -> logging.Handler:
    """Stderr lines saying which backend runs (the issue users hit: a silent CPU fallback)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"facestyle {command}: %(message)s"))
    return handler


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    # For this command only: the handler and level are undone afterwards, so a process that calls main() keeps its logging.
    handler = _backend_log_handler(args.command)
    backends_log = logging.getLogger("facestyle.backends")
    previous_level = backends_log.level
    backends_log.addHandler(handler)
    backends_log.setLevel(logging.INFO)
    try:
        return args.func(args)
    except FacestyleError as exc:
        print(f"facestyle {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"facestyle {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        backends_log.removeHandler(handler)
        backends_log.setLevel(previous_level)
