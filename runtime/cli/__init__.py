"""The ``facestyle`` command: the top-level parser, the exit codes and the per-command backend logging.

Each command group lives in its own module beside its parser (see ``COMMAND_MODULES``); a module defines
``register(subparsers)``, which adds its sub-commands and points each one at the handler next to it. To add a
command group, write the module and name it in ``COMMAND_MODULES``. Every FacestyleError, and every argument
error, becomes exit code 2 and one line on stderr (with ``--json``, also ``{"error": ...}`` on stdout). A reader that
closes the pipe early (``| head``) ends the command quietly.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import logging
import os
import re
import sys
import time

from ..errors import FacestyleError
from .io import positive_int

# Registration order is the order `facestyle --help` lists the commands in.
COMMAND_MODULES = ("build", "faces", "gallery", "style", "embedding", "streams", "bench", "lfw", "serve", "triton", "inspect")


BROKEN_PIPE_EXIT = 128 + 13  # what a shell reports for a program that SIGPIPE ended, as `yes | head` does


class ArgumentLineError(SystemExit):
    """An argument error, already printed as one line on stderr; ``message`` is that line without its prefix."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message


_ARGPARSE_TYPE_WORDS = {"float": "a number", "int": "a whole number"}


def _plain(message: str) -> str:
    """argparse's wording made plain: 'argument --x: invalid float value: 'a'' -> '--x: expected a number, got 'a''."""
    message = re.sub(r"^argument ", "", message)
    return re.sub(r"invalid (float|int) value: (.*)$",
                  lambda m: f"expected {_ARGPARSE_TYPE_WORDS[m.group(1)]}, got {m.group(2)}", message)


class OneLineParser(argparse.ArgumentParser):
    """An argument error is one line, ``facestyle CMD: error: ...``, exit 2 (argparse prints its whole usage).

    Options and positionals may come in any order (``gallery import --gallery G FILE`` as well as
    ``gallery import FILE --gallery G``): argparse's intermixed parsing, for every command.
    """

    _parsing = False

    def error(self, message: str):
        message = " ".join(_plain(message).split())
        if message.startswith("the following arguments are required: command"):
            message = "give a command (`facestyle --help` lists them)"
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise ArgumentLineError(message)

    def parse_known_args(self, args=None, namespace=None):
        if self._parsing or self._subparsers is not None:  # the top parser hands the rest to a command's parser
            return super().parse_known_args(args, namespace)
        self._parsing = True  # parse_known_intermixed_args calls back here for each of its two passes
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing = False


def _version() -> str:
    from .. import __version__

    return f"facestyle {__version__}"


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="facestyle", description="Face verification and fast neural style, exported and deployed."
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-v", "--verbose", action="store_true", help="log the backend chosen and the timings")
    parser.add_argument("--threads", type=positive_int, metavar="N",
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
    argv = sys.argv[1:] if argv is None else list(argv)
    closed_stdout = sys.stdout is None  # started with stdout closed (`>&-`): print() would drop everything silently
    if closed_stdout:
        sys.stdout = _ClosedOutput()
    try:
        try:
            return _parse_and_run(argv)
        finally:
            sys.stdout.flush()  # also after --help or an argument error, while this code can still catch a closed pipe
    except BrokenPipeError:
        # The reader went away (`| head`): the rest of the output has nowhere to go. Point stdout at devnull so
        # the interpreter's final flush does not complain, and end quietly like a program that SIGPIPE stopped.
        _stdout_to_devnull()
        return BROKEN_PIPE_EXIT
    finally:
        if closed_stdout:
            sys.stdout = None


def _parse_and_run(argv: list[str]) -> int:
    try:
        args = make_parser().parse_args(argv)
    except ArgumentLineError as exc:
        if "--json" in argv[: argv.index("--") if "--" in argv else len(argv)]:
            print(json.dumps({"error": exc.message}))
        raise
    return _run(args)


def _run(args: argparse.Namespace) -> int:
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
        sys.stdout.flush()  # a full disk or a closed stdout fails here, inside the one-line error handling
        log.info("done in %.2f s", time.perf_counter() - started)
        return code
    except FacestyleError as exc:
        return _fail(args, " ".join(str(exc).split()))
    except BrokenPipeError:
        raise
    except OSError as exc:
        # An output the checks could not foresee (a disk filling up, a folder removed meanwhile): one line, exit 2.
        name = exc.filename if exc.filename is not None else "output"
        return _fail(args, f"{name}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        print(f"facestyle {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if args.threads is not None:
            set_default_threads(None)  # for this command only, like the logging
        log.removeHandler(handler)
        log.setLevel(previous_level)


def _fail(args: argparse.Namespace, message: str) -> int:
    """The one error line on stderr; with --json the same message as ``{"error": ...}`` on stdout too. Exit 2."""
    print(f"facestyle {args.command}: error: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        try:
            print(json.dumps({"error": message}), flush=True)
        except OSError:
            pass  # stdout is what failed: the stderr line says so
    return 2


class _ClosedOutput:
    """sys.stdout when the process started without one: every write fails, so a command cannot exit 0 having
    silently written nothing."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "closed, nothing can be written to it", "standard output")

    def flush(self) -> None:
        pass


def _stdout_to_devnull() -> None:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (tests capture it): nothing will flush to a closed pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
