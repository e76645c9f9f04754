"""The web page at / in a real browser: Debian's chromium, headless, driven by Playwright (no browser download)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serve_helpers import *  # noqa: F403 (fixtures)
from serve_helpers import Server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (Debian's chromium: apt-get install chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page_server(serve_engines, token_file, tmp_path_factory):
    s = Server(serve_engines, "--gallery", str(tmp_path_factory.mktemp("page") / "g.db"), token_file=token_file)
    yield s
    assert s.stop() == 0


def test_verify_enrol_identify_stylize_in_the_browser(browser, page_server, examples, analyzer, tmp_path,
                                                       serve_engines):
    from facestyle.style.stylizer import list_styles

    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    try:
        page.goto(page_server.url + "/")
        page.fill("#token", page_server.token)
        page.dispatch_event("#token", "change")
        page.wait_for_selector("body[data-ready=true]", timeout=60_000)

        # Verify: two photos of Obama -> same person, the distance the runtime gives, boxes drawn.
        page.set_input_files("#verify-a", str(examples / "obama.jpg"))
        page.set_input_files("#verify-b", str(examples / "obama2.jpg"))
        page.click("#verify-run")
        page.wait_for_selector("#verify-result.same", timeout=60_000)
        expected = analyzer.verify(str(examples / "obama.jpg"), str(examples / "obama2.jpg"))
        assert page.inner_text("#verify-result").startswith(f"Same person: distance {expected.distance:.4f}")
        assert page.get_attribute("#verify-canvas-a", "data-faces") == "1"
        page.set_input_files("#verify-b", str(examples / "biden.jpg"))
        page.click("#verify-run")
        page.wait_for_selector("#verify-result.different", timeout=60_000)

        # Enrol Obama, then identify the photo of Obama and Biden together.
        page.fill("#enroll-name", "Barack Obama")
        page.set_input_files("#enroll-files", str(examples / "obama.jpg"))
        page.click("#enroll-run")
        page.wait_for_selector("#enroll-result.same, #enroll-result.error", timeout=60_000)
        assert "enrolled" in page.inner_text("#enroll-result"), page.inner_text("#enroll-result")
        page.wait_for_selector("#people li", timeout=10_000)
        assert page.inner_text("#people li").startswith("Barack Obama (1 photo)")
        page.set_input_files("#identify-file", str(examples / "two_people.jpg"))
        page.click("#identify-run")
        page.wait_for_selector("#identify-result li", timeout=60_000)
        names = sorted(li.split(" (")[0] for li in page.locator("#identify-result li").all_inner_texts())
        assert names == ["Barack Obama", "unknown"]
        assert page.get_attribute("#identify-canvas", "data-faces") == "2"

        # Stylise with the style picker: the result beside the original, same size.
        style = list_styles(serve_engines)[0]["name"]
        assert page.eval_on_selector_all("#stylize-style option", "os => os.map(o => o.value)") == [style]
        page.set_input_files("#stylize-file", str(examples / "obama.jpg"))
        page.click("#stylize-run")
        page.wait_for_selector("#stylize-status.same", timeout=120_000)
        size = page.eval_on_selector("#stylize-output", "i => [i.naturalWidth, i.naturalHeight]")
        original = page.eval_on_selector("#stylize-original", "i => [i.naturalWidth, i.naturalHeight]")
        assert size == original and size[0] > 0
        shot = Path(os.environ.get("FACESTYLE_PAGE_SCREENSHOT", tmp_path / "page.png"))
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000

        # A wrong token: the page shows the server's message.
        page.fill("#token", "wrong-token-000000")
        page.click("#verify-run")
        page.wait_for_selector("#verify-result.error", timeout=30_000)
        assert "wrong token (unauthorized)" in page.inner_text("#verify-result")
    finally:
        page.close()
