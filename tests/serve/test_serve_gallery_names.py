"""The gallery endpoints: one photo enrolled under one name however many requests race, and one rule for names."""

import sqlite3
import threading

import numpy as np
import pytest

from serve_helpers import EXAMPLES, Server, require_shared


@pytest.fixture(scope="module")
def gallery_server(engines_dir, tmp_path_factory):
    """A server on the face models alone, over a gallery holding a name from before names were checked."""
    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.face.gallery import Gallery

    path = tmp_path_factory.mktemp("names") / "people.db"
    gallery = Gallery.open(path, FaceAnalyzer.from_engines(engines_dir).embedder.identity)
    gallery.add("legacy", np.ones(gallery.identity.dim, np.float32), "h-legacy")
    gallery.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE people SET name = 'ac/dc' WHERE name = 'legacy'")
    s = Server(engines_dir, "--gallery", str(path))
    yield s
    s.stop()


def test_racing_requests_enrol_one_photo_under_one_name(gallery_server):
    photo = (require_shared(EXAMPLES) / "obama.jpg").read_bytes()
    responses = {}

    def enrol(name):
        with gallery_server.client() as c:
            responses[name] = c.post("/v1/enroll", data={"name": name}, files=[("images", ("obama.jpg", photo, "image/jpeg"))])

    threads = [threading.Thread(target=enrol, args=(f"n{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    codes = sorted(r.status_code for r in responses.values())
    assert codes == [200] + [409] * 7, {n: r.text for n, r in responses.items()}
    (winner,) = [n for n, r in responses.items() if r.status_code == 200]
    assert all(f"already enrolled as {winner}" in r.json()["error"]["message"]
               for r in responses.values() if r.status_code == 409)
    with gallery_server.client() as c:
        people = {p["name"]: p["photos"] for p in c.get("/v1/people").json()["people"]}
    assert people == {"ac/dc": 1, winner: 1}


@pytest.mark.parametrize(("name", "message"), [("UNKNOWN", "'unknown' is reserved"), ("a/b", "contains '/'"),
                                               ("x" * 129, "129 characters, at most 128"), ("tab\there", "U+0009")])
def test_enrol_refuses_a_name_the_schema_refuses(gallery_server, name, message):
    with gallery_server.client() as c:
        r = c.post("/v1/enroll", data={"name": name}, files=[("images", ("x.png", b"never decoded", "image/png"))])
    body = r.json()["error"]
    assert r.status_code == 422 and body["code"] == "bad_input" and body["input"] == "name" and message in body["message"]


def test_a_name_with_a_slash_from_an_older_gallery_can_be_removed(gallery_server):
    with gallery_server.client() as c:
        assert c.delete("/v1/people/ac%2Fdc").json() == {"person": "ac/dc", "removed_photos": 1}
        gone = c.delete("/v1/people/ac%2Fdc")
    assert gone.status_code == 404 and "nobody of that name" in gone.json()["error"]["message"]
