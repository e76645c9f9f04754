"""The documentation site builds cleanly, its generated reference matches the code, and the product's text speaks
of the product only (no tracker numbers, no account of how the work was done)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# What the text is checked over; generated and binary files are skipped by suffix.
TEXT_ROOTS = ("README.md", "docs", "runtime", "export", "tests", "benchmarks", "examples", "mkdocs.yml")
TEXT_SUFFIXES = {".md", ".py", ".json", ".yml", ".yaml", ".txt", ".html", ".js", ".css", ".pbtxt", ".toml"}
# "issue <n>" and the s-word; spelt with a class so that this file does not match itself.
PROCESS_WORDS = re.compile(r"\bissue\s+#?[0-9]+|se[s]sion", re.I)
# Third-party identifiers that contain the word: onnxruntime's classes, methods and configuration keys, the
# subprocess module's start_new_se...ion argument and pytest's fixture scope.
ALLOWED_IDENTIFIERS = re.compile(
    r"InferenceSe[s]sion|Se[s]sionOptions|get_se[s]sion_options|add_se[s]sion_config_entry|[\"']se[s]sion\.[a-z_.]+[\"']"
    r"|start_new_se[s]sion|scope=[\"']se[s]sion[\"']|clean_se[s]sion"
)


def mkdocs_available() -> None:
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason=f"{module} is not installed: pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    mkdocs_available()
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                          "-d", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    problems = [line for line in run.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert run.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(problems or run.stderr.splitlines()[-20:])
    return out


def test_the_site_builds_strictly_with_every_page_of_the_nav(site):
    import yaml

    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    for page in nav_pages(config["nav"]):
        stem = Path(page).with_suffix("")
        built = site / (stem.parent if stem.name == "index" else stem) / "index.html"
        assert built.is_file(), f"{page} is in the nav but was not built"


def nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in nav_pages(value)]
    return [p for item in nav for p in nav_pages(item)]


def test_the_cli_reference_has_a_section_per_command_of_the_parser(site):
    from facestyle.cli import make_parser

    page = (site / "reference" / "cli" / "index.html").read_text()
    commands = make_parser()._subparsers._group_actions[0].choices
    assert len(commands) >= 15
    for name in commands:
        assert f'id="{name}"' in page, f"no section for `facestyle {name}` in the CLI reference"
        assert f"facestyle {name} [-h]" in page, f"no usage line for `facestyle {name}` in the CLI reference"


def test_the_benchmark_pages_name_the_machine_and_show_every_result(site):
    results = sorted((REPO / "benchmarks" / "results").rglob("*.json"))
    index = (site / "benchmarks" / "index.html").read_text()
    assert results
    for path in results:
        name = path.relative_to(REPO / "benchmarks" / "results").with_suffix("").as_posix().replace("/", "-")
        page = (site / "benchmarks" / name / "index.html").read_text()
        assert "Recorded in" in page and "<table>" in page, f"{name}: no table"
        assert f'href="{name}/"' in index
    bench = (site / "benchmarks" / "bench-2026-12-02" / "index.html").read_text()
    assert "AMD EPYC" in bench and 'src="../bench-2026-12-02-latency.png"' in bench
    assert (site / "benchmarks" / "bench-2026-12-02-latency.png").is_file()


def test_the_python_api_reference_documents_the_public_classes(site):
    page = (site / "reference" / "python-api" / "index.html").read_text()
    for name in ("FaceAnalyzer", "FaceEmbedder", "Gallery", "Stylizer", "MicroBatcher", "FacestyleError"):
        assert f"{name}" in page and re.search(rf'id="facestyle\.[\w.]*\b{name}"', page), f"{name} is not documented"


def product_text_files() -> list[Path]:
    files = []
    for root in TEXT_ROOTS:
        path = REPO / root
        candidates = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        files += [p for p in candidates if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts]
    return files


def process_words(text: str) -> list[str]:
    return [word for _, word in process_words_by_line(text)]


def process_words_by_line(text: str) -> list[tuple[int, str]]:
    return [(number, m.group(0)) for number, line in enumerate(text.splitlines(), start=1)
            for m in PROCESS_WORDS.finditer(ALLOWED_IDENTIFIERS.sub("", line))]


def test_the_process_word_check_finds_them_and_spares_library_names():
    assert process_words("see iss" "ue 12 and ISS" "UE #3") == ["iss" "ue 12", "ISS" "UE #3"]
    assert process_words("In this se" "ssion we") == ["se" "ssion"]
    assert process_words("ort.InferenceSe" "ssion(path, ort.Se" "ssionOptions())") == []
    assert process_words('@pytest.fixture(scope="se' 'ssion")') == []
    assert process_words("paho.Client(clean_se" "ssion=False)") == []
    assert process_words('o.add_se' 'ssion_config_entry("se' 'ssion.intra_op.allow_spinning", "0")') == []
    assert process_words("the issue is the threshold") == []


def test_the_product_text_speaks_of_the_product_only():
    found = [f"  {path.relative_to(REPO)}:{number}: {word}" for path in product_text_files()
             for number, word in process_words_by_line(path.read_text(errors="replace"))]
    assert not found, f"{len(found)} process word(s):\n" + "\n".join(found)
