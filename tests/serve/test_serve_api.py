"""Each endpoint of a real `facestyle serve` on 127.0.0.1 against the runtime's (and the CLI's) own results."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys

import numpy as np

from serve_helpers import *  # noqa: F403 (fixtures)
from serve_helpers import httpx


def _files(field: str, *items: tuple[str, bytes]) -> list:
    return [(field, (name, data, "application/octet-stream")) for name, data in items]


def test_health_ready_lists_every_model_kind(server):
    from facestyle.kinds import KINDS

    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/readyz").json()
    assert ready["ready"] is True and set(ready["models"]) == set(KINDS)
    assert all(ready["models"][k]["state"] == "loaded" for k in KINDS)


def test_embed_equals_the_runtime_multipart_and_base64(server, analyzer, astronaut_bytes, examples):
    photos = [("astronaut.png", astronaut_bytes), ("two_people.jpg", (examples / "two_people.jpg").read_bytes())]
    with server.client() as c:
        multipart = c.post("/v1/embed", files=_files("images", *photos))
        as_json = c.post("/v1/embed", json={"images": [base64.b64encode(d).decode() for _, d in photos]})
    assert multipart.status_code == 200 and as_json.status_code == 200
    for got, again, (name, data) in zip(multipart.json()["images"], as_json.json()["images"], photos):
        expected = analyzer.faces(data)
        assert got["name"] == name and len(got["faces"]) == len(expected) >= 1
        for face, ref, other in zip(got["faces"], expected, again["faces"]):
            assert face["box"] == [int(v) for v in ref.box] == other["box"]
            assert face["landmarks"] == ref.to_json()["landmarks"]
            assert np.abs(np.array(face["embedding"]) - ref.embedding).max() < 1e-5
            assert np.abs(np.array(face["embedding"]) - np.array(other["embedding"])).max() < 1e-5
    assert len(multipart.json()["images"][1]["faces"]) == 2  # two_people.jpg


def test_embed_equals_the_cli(server, serve_engines, examples, tmp_path):
    files = [examples / "obama.jpg", examples / "biden.jpg"]
    cli = subprocess.run([sys.executable, "-c", "import sys; from facestyle.cli import main; sys.exit(main())",
                          "embed", *map(str, files), "--json", "--engines", str(serve_engines), "--backend", "ort-cpu"],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    with server.client() as c:
        served = c.post("/v1/embed", files=_files("images", *[(f.name, f.read_bytes()) for f in files])).json()
    for item, got in zip(json.loads(cli.stdout), served["images"]):
        assert [f["box"] for f in item["faces"]] == [f["box"] for f in got["faces"]]
        diff = np.abs(np.array([f["embedding"] for f in item["faces"]]) - np.array([f["embedding"] for f in got["faces"]]))
        assert diff.max() < 1e-5


def test_embed_aligned_chips(server, analyzer, astronaut_bytes):
    from facestyle.images import encode_image, load_image

    pixels = load_image(astronaut_bytes)
    face = analyzer.faces(pixels)[0]
    _, chips = analyzer.chips(pixels, face.box[None])
    with server.client() as c:
        r = c.post("/v1/embed?aligned=true", files=_files("images", ("chip.png", encode_image(chips[0]))))
        wrong = c.post("/v1/embed?aligned=true", files=_files("images", ("photo.png", astronaut_bytes)))
    assert np.abs(np.array(r.json()["images"][0]["embedding"]) - analyzer.embedder.embed(chips)[0]).max() < 1e-5
    assert wrong.status_code == 400 and "150x150" in wrong.json()["error"]["message"]
    assert wrong.json()["error"]["input"] == "photo.png"


def test_verify_equals_the_runtime(server, analyzer, examples):
    a, b, c_ = (examples / n for n in ("obama.jpg", "obama2.jpg", "biden.jpg"))
    with server.client() as c:
        same = c.post("/v1/verify", files=_files("a", (a.name, a.read_bytes())) + _files("b", (b.name, b.read_bytes())))
        other = c.post("/v1/verify", json={"a": base64.b64encode(a.read_bytes()).decode(),
                                           "b": "data:image/jpeg;base64," + base64.b64encode(c_.read_bytes()).decode()})
    for response, pair in ((same, (a, b)), (other, (a, c_))):
        assert response.status_code == 200
        expected = analyzer.verify(*map(str, pair))
        got = response.json()
        assert abs(got["distance"] - expected.distance) < 1e-5
        assert got["same"] == expected.same and got["threshold"] == expected.threshold == 0.6
        assert got["threshold_source"] == expected.threshold_source and got["faces"] == {"a": 1, "b": 1}
    assert same.json()["same"] is True and other.json()["same"] is False


def test_enroll_identify_people_delete(server, analyzer, examples):
    with server.client() as c:
        r = c.post("/v1/enroll", data={"name": "obama"},
                   files=_files("images", ("obama.jpg", (examples / "obama.jpg").read_bytes())))
        assert r.status_code == 200 and r.json()["photos"][0]["status"] == "enrolled"
        biden = base64.b64encode((examples / "biden.jpg").read_bytes()).decode()
        r = c.post("/v1/enroll", json={"name": "biden", "images": [biden]})
        assert r.status_code == 200 and r.json()["photos_enrolled"] == 1
        again = c.post("/v1/enroll", data={"name": "obama"},
                       files=_files("images", ("obama.jpg", (examples / "obama.jpg").read_bytes())))
        assert again.json()["photos"][0]["status"] == "duplicate"
        renamed = c.post("/v1/enroll", data={"name": "barack"},
                         files=_files("images", ("obama.jpg", (examples / "obama.jpg").read_bytes())))
        assert renamed.status_code == 409 and renamed.json()["error"]["code"] == "already_enrolled"
        assert "barack: obama.jpg: this photo is already enrolled as obama; nothing enrolled" in renamed.json()["error"]["message"]
        assert c.get("/v1/people").json() == {"people": [{"name": "biden", "photos": 1}, {"name": "obama", "photos": 1}]}
        found = c.post("/v1/identify?top_k=2", files=_files("image", ("q.jpg", (examples / "obama2.jpg").read_bytes()))).json()
        two = c.post("/v1/identify", files=_files("image", ("t.jpg", (examples / "two_people.jpg").read_bytes()))).json()
        assert c.delete("/v1/people/biden").json() == {"person": "biden", "removed_photos": 1}
        gone = c.delete("/v1/people/biden")
        assert c.get("/v1/people").json() == {"people": [{"name": "obama", "photos": 1}]}
        after = c.post("/v1/identify", files=_files("image", ("t.jpg", (examples / "two_people.jpg").read_bytes()))).json()
    assert found["faces"][0]["identity"] == "obama" and [m["name"] for m in found["faces"][0]["matches"]] == ["obama", "biden"]
    assert found["threshold"] == 0.6 and "2 enrolled people are too few to calibrate a 1:N threshold" in found["threshold_source"]
    expected = np.linalg.norm(analyzer.faces(str(examples / "obama2.jpg"))[0].embedding
                              - analyzer.faces(str(examples / "obama.jpg"))[0].embedding)
    assert abs(found["faces"][0]["matches"][0]["distance"] - expected) < 1e-5
    assert sorted(f["identity"] for f in two["faces"]) == ["biden", "obama"]
    assert sorted(f["identity"] for f in after["faces"]) == ["obama", "unknown"]  # biden is forgotten
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def test_stylize_equals_the_runtime_png_and_jpeg(server, serve_engines, astronaut_bytes):
    from PIL import Image

    from facestyle.images import load_image
    from facestyle.style.stylizer import Stylizer, list_styles

    style = list_styles(serve_engines)[0]["name"]
    with server.client() as c:
        assert [s["name"] for s in c.get("/v1/styles").json()["styles"]] == [style]
        png = c.post(f"/v1/stylize?style={style}&strength=0.7&max_side=256", headers={"Accept": "image/png"},
                     files=_files("image", ("a.png", astronaut_bytes)))
        jpeg = c.post(f"/v1/stylize?style={style}&max_side=256", files=_files("image", ("a.png", astronaut_bytes)))
    assert png.headers["content-type"] == "image/png" and jpeg.headers["content-type"] == "image/jpeg"
    expected = Stylizer.from_engines(style, serve_engines).stylize(load_image(astronaut_bytes), 0.7, max_side=256)
    got = np.asarray(Image.open(io.BytesIO(png.content)))
    assert got.shape == expected.shape == (256, 256, 3)
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert Image.open(io.BytesIO(jpeg.content)).size == (256, 256)


def test_stylize_looks_equal_the_runtimes_and_a_bad_stroke_scale_is_refused(server, serve_engines, astronaut_bytes):
    from PIL import Image

    from facestyle.images import load_image
    from facestyle.style.stylizer import Stylizer, list_styles

    style = list_styles(serve_engines)[0]["name"]
    looks = {"stroke_scale": 2.0, "preserve_colour": True, "keep_faces": True}
    query = "&".join(f"{k}={str(v).lower()}" for k, v in looks.items())
    with server.client() as c:
        png = c.post(f"/v1/stylize?style={style}&{query}", headers={"Accept": "image/png"},
                     files=_files("image", ("a.png", astronaut_bytes)))
        refused = c.post(f"/v1/stylize?style={style}&stroke_scale=9", files=_files("image", ("a.png", astronaut_bytes)))
    stylizer = Stylizer.from_engines(style, serve_engines, face_engines=serve_engines)
    expected = stylizer.stylize(load_image(astronaut_bytes), **looks)
    plain = stylizer.stylize(load_image(astronaut_bytes))
    got = np.asarray(Image.open(io.BytesIO(png.content)))
    assert png.status_code == 200 and got.shape == expected.shape == (512, 512, 3)
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert np.abs(got.astype(int) - plain).mean() > 5  # the options reached the stylizer
    assert refused.status_code == 422 and "stroke_scale" in refused.text


def test_metrics_latency_per_endpoint_and_errors_by_status(server, astronaut_bytes):
    from facestyle.serve.metrics import parse_text

    with server.client() as c:
        c.post("/v1/embed", files=_files("images", ("a.png", astronaut_bytes)))
        c.post("/v1/embed", files=_files("images", ("t.txt", b"not an image at all")))
        text = c.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    m = parse_text(text.text)
    assert m['facestyle_http_request_duration_seconds_count{method="POST",endpoint="/v1/embed"}'] >= 2
    assert m['facestyle_http_errors_total{status="400",code="bad_image"}'] >= 1
    assert m['facestyle_batch_size_count{batcher="embed"}'] >= 1
    assert 'facestyle_queue_depth{batcher="stylize"}' in m


def test_token_is_required_and_compared(server, astronaut_bytes):
    files = _files("images", ("a.png", astronaut_bytes))
    missing = httpx.post(server.url + "/v1/embed", files=files)
    wrong = httpx.post(server.url + "/v1/embed", files=files, headers={"Authorization": "Bearer wrong-token-000000"})
    prefix = httpx.post(server.url + "/v1/embed", files=files, headers={"Authorization": f"Bearer {server.token[:-1]}"})
    key = httpx.post(server.url + "/v1/embed", files=files, headers={"X-API-Key": server.token}, timeout=60)
    for r, why in ((missing, "missing token"), (wrong, "wrong token"), (prefix, "wrong token")):
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized" and why in r.json()["error"]["message"]
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert key.status_code == 200
    assert httpx.get(server.url + "/metrics").status_code == 401
    assert httpx.get(server.url + "/healthz").status_code == 200 and httpx.get(server.url + "/").status_code == 200


def test_token_file_must_be_readable_and_long_enough(serve_engines, tmp_path):
    short = tmp_path / "short"
    short.write_text("abc")
    for token_file, match in ((short, "at least 8 characters"), (tmp_path / "absent", "cannot read it")):
        p = subprocess.run([sys.executable, "-m", "facestyle.serve", "--engines", str(serve_engines), "--port", "0",
                            "--token-file", str(token_file)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and match in p.stderr and p.stderr.count("\n") == 1
    p = subprocess.run([sys.executable, "-m", "facestyle.serve", "--engines", str(tmp_path / "nothing")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "no such folder" in p.stderr


def test_the_cli_registers_serve_without_importing_fastapi():
    code = ("import sys; from facestyle.cli import make_parser; import facestyle.serve, facestyle.serve.server; "
            "p = make_parser(); a = p.parse_args(['serve', '--port', '0']); "
            "print(a.host, a.max_body_mb, a.max_batch, 'fastapi' in sys.modules, 'onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["127.0.0.1", "20.0", "32", "False", "False"]


def test_error_mapping_is_one_table():
    from facestyle.errors import BadImageError, BadInputError, BatcherFullError, FacestyleError, NoFaceError
    from facestyle.serve.errors import NotFoundError, status_of

    assert [status_of(e).status for e in (NoFaceError("x"), BadImageError("x"), NotFoundError("x"), BadInputError("x"),
                                          BatcherFullError("x"), FacestyleError("x"), RuntimeError("x"))] == \
        [400, 400, 404, 422, 503, 500, 500]
