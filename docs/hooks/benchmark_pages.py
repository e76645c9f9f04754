"""MkDocs hook: one page per recorded result (``benchmarks/results/**/*.json``), written at build time.

Each page says which script measured it (and that script's question, from its docstring), names the machine by
its CPU model as the JSON records it, shows the plots committed beside the JSON, and turns every list of records
in the file into a table. The result files differ in shape, so the tables are found, not assumed: a list of
objects, or an object whose values are all objects (one row per key), at the top level of the file.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

from mkdocs.structure.files import File

SECTION = "Benchmarks"
INDEX = "benchmarks/index.md"
# Result files whose name does not start with the name of the script that wrote them.
SCRIPT_BY_PREFIX = {
    "bench-": "bench_all.py",
    "precision-": "precision_accuracy.py",
    "lfw-view1-devtest-dlib": "lfw_dlib_pipeline.py",
    "lfw-view1-devtest-facestyle": "facestyle eval-lfw",
    "triplet-lfw": "triplet_lfw.py",
    "detect-profile": "detect_profile.py",
    "triton-latency": "triton_latency.py",
    "style-select/": "style_select.py",
}
MACHINE_KEYS = (("environment", "cpu"), ("machine", "cpu"), ("machine",))
MAX_DEPTH = 3  # nested objects in a record become dotted columns down to this depth
MAX_LIST_CELL = 4  # short lists of numbers fit in a cell; longer ones are left out of the table


def benchmarks_root(config) -> Path:
    return Path(config["config_file_path"]).resolve().parent / "benchmarks"


def result_files(config) -> list[Path]:
    results = benchmarks_root(config) / "results"
    return sorted(results.rglob("*.json"), key=lambda p: p.relative_to(results).as_posix())


def page_name(results: Path, path: Path) -> str:
    return "benchmarks/" + path.relative_to(results).with_suffix("").as_posix().replace("/", "-") + ".md"


def on_config(config):
    """The nav's ``Benchmarks`` entry becomes a section: the overview, then one page per result file."""
    if not config["nav"]:
        return config  # no nav written: mkdocs lists every page itself
    results = benchmarks_root(config) / "results"
    pages = [{"Overview": INDEX}] + [{label(results, p): page_name(results, p)} for p in result_files(config)]
    config["nav"] = [{SECTION: pages} if isinstance(item, dict) and SECTION in item else item
                     for item in config["nav"]]
    return config


def on_files(files, config):
    root = benchmarks_root(config)
    results = root / "results"
    paths = result_files(config)
    files.append(File.generated(config, INDEX, content=index_markdown(root, results, paths)))
    for path in paths:
        plots = plots_of(path)
        files.append(File.generated(config, page_name(results, path), content=result_markdown(root, results, path, plots)))
        for plot in plots:
            files.append(File.generated(config, f"benchmarks/{plot.name}", abs_src_path=str(plot)))
    return files


def label(results: Path, path: Path) -> str:
    return path.relative_to(results).with_suffix("").as_posix()


def plots_of(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.glob("*.png") if p.stem == path.stem or p.stem.startswith(path.stem + "-"))


# -- where a result came from ------------------------------------------------------------------
def script_of(root: Path, results: Path, path: Path) -> str | None:
    name = label(results, path)
    normalized = name.replace("-", "_")
    stems = [s.stem for s in root.glob("*.py") if not s.stem.startswith("_") and normalized.startswith(s.stem)]
    if stems:  # the longest: streams-soak-... was written by streams_soak.py, not streams.py
        return max(stems, key=len) + ".py"
    return next((script for prefix, script in SCRIPT_BY_PREFIX.items() if name.startswith(prefix)), None)


def question_of(root: Path, script: str | None) -> str:
    path = root / script if script else None
    if path is None or not path.is_file():
        return ""
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    return " ".join(docstring.split("\n\n")[0].split())


def machine_of(data) -> str:
    for keys in MACHINE_KEYS:
        value = data
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            return value
    return "not recorded in the file"


# -- the pages ---------------------------------------------------------------------------------
def index_markdown(root: Path, results: Path, paths: list[Path]) -> str:
    lines = ["# Benchmarks", "",
             "Every result recorded in `benchmarks/results/`, one page each, written from the JSON when these "
             "pages are built. How each was measured is in the script named; `benchmarks/README.md` says how "
             "to rerun them.", "",
             "| result | machine | script |", "|---|---|---|"]
    for path in paths:
        data = json.loads(path.read_text())
        link = f"[{label(results, path)}]({Path(page_name(results, path)).name})"
        lines.append(f"| {link} | {cell(machine_of(data))} | {cell(script_of(root, results, path) or '')} |")
    return "\n".join(lines) + "\n"


def result_markdown(root: Path, results: Path, path: Path, plots: list[Path]) -> str:
    data = json.loads(path.read_text())
    script = script_of(root, results, path)
    lines = [f"# {label(results, path)}", "",
             f"Recorded in `benchmarks/results/{path.relative_to(results).as_posix()}` on **{machine_of(data)}**"
             + (f", by `{script}`" if script else "") + ".", ""]
    question = question_of(root, script)
    if question:
        lines += [f"> {question}", ""]
    lines += [f"![{plot.stem}]({plot.name})\n" for plot in plots]
    if not isinstance(data, dict):
        data = {"records": data}
    summary = {k: v for k, v in flatten(data).items() if k.split(".")[0] not in tables_of(data)}
    if summary:
        lines += ["## Settings and totals", "", "| field | value |", "|---|---|"]
        lines += [f"| {cell(k)} | {cell(fmt(v))} |" for k, v in summary.items()]
        lines.append("")
    for name, rows in tables_of(data).items():
        lines += [f"## {name}", "", *table(rows), ""]
    return "\n".join(lines) + "\n"


def tables_of(data: dict) -> dict[str, list[dict]]:
    """Top-level lists of records, and objects of records (their keys become a ``name`` column)."""
    found = {}
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            found[key] = value
        elif isinstance(value, dict) and len(value) > 1 and all(isinstance(v, dict) for v in value.values()):
            found[key] = [{"name": name, **row} for name, row in value.items()]
    return found


def table(rows: list[dict]) -> list[str]:
    flat = [flatten(row) for row in rows]
    columns = list(dict.fromkeys(key for row in flat for key in row))
    out = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(cell(fmt(row.get(c, ""))) for c in columns) + " |" for row in flat]
    return out


def flatten(value: dict, prefix: str = "", depth: int = 1) -> dict:
    """Scalars (and short lists of scalars) under dotted keys; deeper objects and long lists are left out."""
    out = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            if depth < MAX_DEPTH:
                out.update(flatten(item, name + ".", depth + 1))
        elif isinstance(item, list):
            if len(item) <= MAX_LIST_CELL and all(is_scalar(v) for v in item):
                out[name] = ", ".join(fmt(v) for v in item)
        else:
            out[name] = item
    return out


def is_scalar(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if isinstance(value, float):
        if value == 0 or not math.isfinite(value):
            return str(value)
        if not 1e-3 <= abs(value) < 1e6:
            return f"{value:.3e}"
        decimals = max(0, 3 - math.floor(math.log10(abs(value))))
        text = f"{value:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


def cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")
