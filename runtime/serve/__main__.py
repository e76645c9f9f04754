"""``python -m facestyle.serve`` = ``facestyle serve`` (same options, same exit codes)."""

from __future__ import annotations

import argparse
import sys

from ..errors import FacestyleError
from .server import add_arguments, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facestyle serve", description="HTTP service over the facestyle runtime")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return serve(args)
    except FacestyleError as exc:
        print(f"facestyle serve: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
