"""Triplet-loss experiments on LFW View 1: train on DevTrain identities only, evaluate on DevTest pairs.

(a) a compact network from scratch (this CPU): DevTest accuracy against steps;
(b) dlib's network fine-tuned with triplet loss, per mining strategy: DevTest accuracy and TAR@FAR 1e-3
    before (step 0) and after;
(c) the similarity head (abs and chi-square) against the plain threshold, both fitted on training pairs.

Runs (a) and (b) are `facestyle train-embedding` itself (resumable: rerun this script and finished runs are reused,
interrupted ones continue). Runs (c) train no step, which the command refuses (--max-steps is at least 1): they call
its own steps through the Python API instead (load_data, EmbeddingTrainer, finish: the same data, threshold, head
and export). Results: benchmarks/results/triplet-lfw-view1.json and .png (accuracy vs steps).

    python benchmarks/triplet_lfw.py [--runs DIR] [--scratch-steps 600] [--finetune-steps 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _machine import cpu_model  # benchmarks/ is on sys.path when a script runs
from facestyle.paths import cache_dir

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "data" / "lfw-view1"
RESULTS = REPO / "benchmarks" / "results" / "triplet-lfw-view1.json"


def runs_table(args) -> dict[str, list[str]]:
    scratch = ["--arch", "compact", "--init", "scratch", "--mining", "batch-hard", "--max-steps", str(args.scratch_steps),
               "--eval-every", str(max(1, args.scratch_steps // 6))]
    finetune = ["--arch", "dlib", "--init", "dlib", "--no-normalize", "--lr", "1e-5", "--identities-per-batch", "8",
                "--images-per-identity", "4", "--max-steps", str(args.finetune_steps),
                "--eval-every", str(max(1, args.finetune_steps // 3))]
    return {
        **{f"b-finetune-{m}": [*finetune, "--mining", m] for m in ("batch-hard", "semi-hard", "batch-all")},
        "a-scratch-compact": scratch,
        # batch-hard from scratch collapsed (every embedding at one point: loss = alpha); batch-all does not
        "a-scratch-compact-batch-all": [*scratch, "--mining", "batch-all"],
    }


HEAD_ONLY = {"c-dlib-abs-head": "abs", "c-dlib-chi2-head": "chi2"}  # dlib's weights, untrained: the head's form


def head_only(name: str, form: str, runs: Path, cache: Path) -> dict:
    """train-embedding's data, threshold, head and export on dlib's untrained network: no training step."""
    from facestyle.export.embedding.run import TrainingData, finish, load_data
    from facestyle.export.embedding.train import EmbeddingTrainer
    from facestyle.train_config import EmbeddingTrainConfig

    out = runs / name
    summary_file = out / "summary.json"
    if summary_file.exists():
        return json.loads(summary_file.read_text())
    print(f"[{name}] dlib's weights, no training step, --head {form}", flush=True)
    config = EmbeddingTrainConfig(arch="dlib", init="dlib", normalize=False, head=form)
    data = TrainingData(LFW / "lfw-deepfunneled", identities=LFW / "pairsDevTrain.txt",
                        eval_pairs=LFW / "pairsDevTest.txt", chip_cache=cache)
    train, held_out = load_data(data, REPO / "engines", config.seed, progress=False)
    summary = finish(EmbeddingTrainer(train, held_out, out, config), f"{len(train)} chips from {data.data}")
    summary["curve"] = [summary["eval"]]  # held-out figures at step 0
    summary["options"] = ["--arch", "dlib", "--init", "dlib", "--no-normalize", "--head", form, "(no training step)"]
    out.mkdir(parents=True, exist_ok=True)
    summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run(name: str, options: list[str], runs: Path, cache: Path) -> dict:
    out = runs / name
    summary_file = out / "summary.json"
    if summary_file.exists():
        return json.loads(summary_file.read_text())
    command = [sys.executable, "-c", "import sys; from facestyle.cli import main; sys.exit(main(sys.argv[1:]))",
               "train-embedding", "--data", str(LFW / "lfw-deepfunneled"),
               "--identities", str(LFW / "pairsDevTrain.txt"), "--eval-pairs", str(LFW / "pairsDevTest.txt"),
               "--chip-cache", str(cache), "--out", str(out), "--json", "--quiet", "--engines", str(REPO / "engines"),
               *options]
    if (out / "checkpoint.pt").exists():
        command.append("--resume")
    print(f"[{name}] {' '.join(command[3:])}", flush=True)
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        sys.exit(f"[{name}] failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    summary["curve"] = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines() if line.strip()]
    summary["options"] = options
    summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "triplet-lfw")
    parser.add_argument("--cache", type=Path, default=cache_dir("chips"))
    parser.add_argument("--scratch-steps", type=int, default=600)
    parser.add_argument("--finetune-steps", type=int, default=60)
    parser.add_argument("--only", help="comma-separated run names")
    args = parser.parse_args()
    table = runs_table(args)
    names = args.only.split(",") if args.only else [*HEAD_ONLY, *table]
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": {}}
    for name in names:
        results["runs"][name] = (head_only(name, HEAD_ONLY[name], args.runs, args.cache) if name in HEAD_ONLY
                                 else run(name, table[name], args.runs, args.cache))
        results["machine"] = f"{cpu_model()}, {os.cpu_count()} cores"
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps({name: {k: results["runs"][name].get(k) for k in ("steps", "seconds", "eval", "threshold", "head")}}),
              flush=True)
    plot(results)


def plot(results: dict) -> None:
    """DevTest accuracy against steps, one line per run that trained."""
    from facestyle.plots import save_curves_png

    curves = {name: ([e["step"] for e in r["curve"]], [e["accuracy"] for e in r["curve"]])
              for name, r in results["runs"].items() if r.get("steps")}
    if curves:
        save_curves_png(RESULTS.with_suffix(".png"), curves, "LFW View 1 DevTest 10-fold accuracy (trained on DevTrain)",
                        "training steps", "accuracy")


if __name__ == "__main__":
    main()
