"""The page's cameras in a real browser (Debian's chromium, headless, driven by Playwright): a camera added from
the page shows its frames with the faces named, and its events, newest first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serve_helpers import *  # noqa: F403 (fixtures)
from serve_helpers import Server, httpx
from stream_videos import *  # noqa: F403 (fixtures)
from stream_videos import HEIGHT, WIDTH
from test_serve_page import browser  # noqa: F401 (fixture)

WAIT_MS = 300_000  # a bound on what the camera must show at last, never a measure


@pytest.fixture(scope="module")
def camera_server(engines_dir, token_file, tmp_path_factory):
    s = Server(engines_dir, "--gallery", str(tmp_path_factory.mktemp("camera-page") / "g.db"), token_file=token_file)
    yield s
    assert s.stop() == 0


def test_a_camera_added_on_the_page_shows_named_faces_and_events(browser, camera_server,  # noqa: F811 (fixture)
                                                                  astronaut_walk, astronaut_photo, tmp_path):
    with camera_server.client() as client:
        enrolled = client.post("/v1/enroll", files={"images": astronaut_photo.read_bytes()}, data={"name": "eileen"})
        assert enrolled.status_code == 200, enrolled.text
        unknowns_served = client.get("/v1/unknowns").status_code != 404
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    try:
        page.goto(camera_server.url + "/")
        page.fill("#token", camera_server.token)
        page.dispatch_event("#token", "change")
        page.wait_for_selector("body[data-ready=true]", timeout=60_000)

        page.fill("#camera-source", str(astronaut_walk))
        page.fill("#camera-name", "front door")
        page.click("#camera-add")
        page.wait_for_selector("#camera-result.same", timeout=60_000)
        assert page.inner_text("#camera-result") == "watching front door (stream 1)"
        page.wait_for_selector("#camera-list figure[data-id='1']", timeout=30_000)
        assert page.inner_text("#camera-list figure .name") == "front door"

        # Its frame, drawn by the server with the faces named, at the video's size.
        page.wait_for_function("document.querySelector('#camera-list figure img').naturalWidth > 0", timeout=WAIT_MS)
        size = page.eval_on_selector("#camera-list figure img", "i => [i.naturalWidth, i.naturalHeight]")
        assert size == [WIDTH, HEIGHT]

        # The events, newest first: the track started and was named.
        page.wait_for_selector("#events li[data-kind=identified][data-identity=eileen]", timeout=WAIT_MS)
        identified = page.inner_text("#events li[data-kind=identified]")
        assert "front door: identified eileen (track 1)" in identified
        kinds = page.eval_on_selector_all("#events li", "items => items.map(i => i.dataset.kind)")
        assert kinds[-1] == "stream_started" and "track_start" in kinds
        assert len(kinds) <= 20
        # The panel of faces not named yet is shown only where the server has them.
        page.wait_for_function(f"document.getElementById('unknowns').hidden === {str(not unknowns_served).lower()}",
                               timeout=30_000)

        shot = Path(os.environ.get("FACESTYLE_CAMERAS_SCREENSHOT", tmp_path / "cameras.png"))
        page.screenshot(path=str(shot), full_page=False)
        assert shot.stat().st_size > 10_000

        # Removed from the page: gone there and on the server.
        page.click("#camera-list figure[data-id='1'] button")
        page.wait_for_selector("#camera-list figure", state="detached", timeout=30_000)
        assert httpx.get(camera_server.url + "/v1/streams", headers=camera_server.headers()).json()["streams"] == []
        page.wait_for_selector("#events li[data-kind=stream_stopped]", timeout=30_000)
    finally:
        page.close()
