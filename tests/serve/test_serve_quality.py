"""POST /v1/enroll refuses a photo of poor quality unless ?allow_poor=true, and reports each photo's quality."""

import io

import pytest

from serve_helpers import EXAMPLES, Server, require_shared


@pytest.fixture(scope="module")
def quality_server(engines_dir, tmp_path_factory):
    s = Server(engines_dir, "--gallery", str(tmp_path_factory.mktemp("quality") / "people.db"))
    yield s
    s.stop()


def blurred_jpeg(path) -> bytes:
    from PIL import Image, ImageFilter

    out = io.BytesIO()
    Image.open(path).convert("RGB").filter(ImageFilter.GaussianBlur(8)).save(out, "JPEG", quality=95)
    return out.getvalue()


def test_enroll_refuses_a_blurred_photo_unless_allow_poor(quality_server):
    soft = blurred_jpeg(require_shared(EXAMPLES) / "obama.jpg")
    files = [("images", ("soft.jpg", soft, "image/jpeg"))]
    with quality_server.client() as c:
        refused = c.post("/v1/enroll", data={"name": "obama"}, files=files)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "no_face", refused.text
        assert "obama: no photo is good enough to enrol (soft.jpg: quality 0.00, under 0.50: blurred)" \
            in refused.json()["error"]["message"]
        allowed = c.post("/v1/enroll", params={"allow_poor": "true"}, data={"name": "obama"}, files=files)
        assert allowed.status_code == 200, allowed.text
        (outcome,) = allowed.json()["photos"]
        assert outcome["status"] == "enrolled" and outcome["quality"]["sharpness"] == 0.0
        assert outcome["quality"]["width_px"] > 200 and allowed.json()["photos_enrolled"] == 1
