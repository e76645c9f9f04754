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
import time

from ..errors import FacestyleError

# Registration order is the order `facestyle --help` lists the commands in.
COMMAND_MODULES = ("build", "faces", "gallery", "style", "embedding", "streams", "bench", "lfw", "serve", "triton", "inspect")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facestyle", description="Face verification and fast neural style, exported and deployed."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log the backend chosen and the timings")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="onnxruntime intra-op threads per model (default: $FACESTYLE_THREADS, else one per core); "
                        "1 suits several processes per machine")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        # Command modules import only argparse-level code at import time, so `facestyle --help` stays fast.
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    for sub in subparsers.choices.values():
        # -v after the command too; SUPPRESS keeps a -v given before the command.
        if "-v" not in sub._option_string_actions:
            sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="log the backend chosen and the timings")
    return parser


def _backend_log_handler(command: str) -> logging.Handler:
    """Stderr lines saying which backend runs (the issue users hit: a silent CPU fallback)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"facestyle {command}: %(message)s"))
    return handler


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    # For this command only: the handler and level are undone afterwards, so a process that calls main() keeps its
    # logging. Quiet by default; -v shows the backend chosen and the command's time.
    handler = _backend_log_handler(args.command)
    log = logging.getLogger("facestyle")
    previous_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    from ..backends.onnxruntime import set_default_threads  # numpy only; onnxruntime itself is imported on use

    started = time.perf_counter()
    try:
        if args.threads is not None:
            set_default_threads(args.threads)
        code = args.func(args)
        log.info("done in %.2f s", time.perf_counter() - started)
        return code
    except FacestyleError as exc:
        print(f"facestyle {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:
        # An output the checks could not foresee (a disk filling up, a folder removed meanwhile): one line, exit 2.
        name = exc.filename if exc.filename is not None else "output"
        print(f"facestyle {args.command}: error: {name}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"facestyle {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if args.threads is not None:
            set_default_threads(None)  # for this command only, like the logging
        log.removeHandler(handler)
        log.setLevel(previous_level)
