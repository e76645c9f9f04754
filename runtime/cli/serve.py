"""``facestyle serve``: the HTTP service (extra ``serve``); options and server in ``facestyle.serve.server``."""

from __future__ import annotations

import argparse


def _cmd_serve(args: argparse.Namespace) -> int:
    from ..serve.server import serve

    return serve(args)


def register(subparsers) -> None:
    from ..serve.server import add_arguments  # argparse only: no FastAPI, no onnxruntime

    p = subparsers.add_parser("serve", help="HTTP service: embed, verify, enroll, identify, stylize, a web page, metrics")
    add_arguments(p)
    p.set_defaults(func=_cmd_serve)
