"""The unknown faces over HTTP: listed as clusters, each with its best face, and named, behind the token."""

import numpy as np
import pytest

from serve_helpers import SHARED_DATA, Server, require_shared

LFW = SHARED_DATA / "lfw-view1" / "lfw-deepfunneled"
PEOPLE = ("Tony_Blair", "Colin_Powell")


@pytest.fixture(scope="module")
def unknowns_server(engines_dir, tmp_path_factory):
    """A server over a gallery holding Ann, and the faces of two LFW people kept as unknown (two tracks each)."""
    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.face.gallery import Gallery, unknowns
    from facestyle.images import encode_image

    folder = tmp_path_factory.mktemp("unknowns")
    analyzer = FaceAnalyzer.from_engines(engines_dir)
    gallery = Gallery.open(folder / "people.db", analyzer.embedder.identity)
    gallery.add("Ann", np.ones(gallery.identity.dim, np.float32), "h-ann")
    rows = []
    for person in PEOPLE:
        for track, photo in enumerate(sorted(require_shared(LFW / person).glob("*.jpg"))[:2]):
            face = analyzer.faces(str(photo))[0]
            rows.append(("door", f"{person}-{track}", 1000.0 + track, 1010.0 + track, 0.9,
                         np.asarray(face.embedding, np.float32).tobytes(), encode_image(face.chip, "JPEG")))
    unknowns.keep(gallery.store, rows)
    gallery.close()
    token = folder / "token"
    token.write_text("unknowns-token-0123456789\n")
    s = Server(engines_dir, "--gallery", str(folder / "people.db"), token_file=token)
    yield s
    s.stop()


def test_clusters_are_listed_with_their_best_face_and_named_once(unknowns_server):
    import httpx

    from facestyle.images import load_image

    assert httpx.get(unknowns_server.url + "/v1/unknowns").status_code == 401
    with unknowns_server.client() as c:
        listed = c.get("/v1/unknowns").json()["clusters"]
        assert [(k["count"], k["first_seen"], k["last_seen"]) for k in listed] == [(2, 1000.0, 1011.0)] * 2
        assert [k["chip"] for k in listed] == [f"/v1/unknowns/{k['id']}/chip.jpg" for k in listed]
        chip = c.get(listed[0]["chip"])
        assert chip.headers["content-type"] == "image/jpeg" and load_image(chip.content).shape == (150, 150, 3)
        first, second = (k["id"] for k in listed)
        taken = c.post(f"/v1/unknowns/{first}/name", json={"name": "Ann"})
        assert taken.status_code == 422 and taken.json()["error"]["code"] == "bad_input"
        assert "name 'Ann': already enrolled" in taken.json()["error"]["message"]
        named = c.post(f"/v1/unknowns/{first}/name", json={"name": "Visitor"})
        assert named.status_code == 200 and named.json() == {"cluster": first, "person": "Visitor", "enrolled": 2,
                                                             "tracks": 2, "forgotten": 2}
        assert {"name": "Visitor", "photos": 2} in c.get("/v1/people").json()["people"]
        assert [k["id"] for k in c.get("/v1/unknowns").json()["clusters"]] == [second]
        again = c.post(f"/v1/unknowns/{first}/name", json={"name": "Visitor"})
        assert again.status_code == 404 and "no such cluster now" in again.json()["error"]["message"]
        assert c.get(f"/v1/unknowns/{first}/chip.jpg").status_code == 404
        added = c.post(f"/v1/unknowns/{second}/name", params={"add": "true"}, json={"name": "Ann"})
        assert added.status_code == 200 and c.get("/v1/unknowns").json() == {"clusters": []}
