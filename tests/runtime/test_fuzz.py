"""Property runs over untrusted input: the image decoder and `gallery import` answer a typed error or a result, never
another exception, and a refused import writes nothing.

The inputs are real files changed by hypothesis: a PNG and a JPEG photo with flipped bits, cut ends, edited headers and
declared sizes far beyond the pixel limit; a real `gallery export` document with fields replaced by wrong types, lone
surrogates, deep nesting and numbers no float32 holds.
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis (test extra, with schemathesis) is not installed")
from hypothesis import HealthCheck, event, given, settings, strategies as st  # noqa: E402  (after the importorskip)

from facestyle.errors import FacestyleError, GalleryModelMismatchError  # noqa: E402
from facestyle.face.gallery import Gallery, ModelIdentity, import_file  # noqa: E402
from facestyle.face.gallery.bulk import export_records  # noqa: E402
from facestyle.images import load_image  # noqa: E402

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
MAX_PIXELS = 4_000_000  # a small limit, so that an edited header declaring more is refused before any pixel is decoded
MODEL = ModelIdentity("face-embed", "fp32", "a" * 64, dim=4)


def _photo() -> Image.Image:
    from facestyle.export.sample_inputs import skimage_data_dir

    return Image.open(skimage_data_dir() / "astronaut.png")


def _seeds() -> dict[str, bytes]:
    """A real PNG and a baseline and a progressive JPEG of the same photo (scikit-image's astronaut, 512 x 512)."""
    from facestyle.export.sample_inputs import skimage_data_dir

    photo = _photo().convert("RGB").resize((160, 160))
    out = {"png": (skimage_data_dir() / "astronaut.png").read_bytes()}
    for name, extra in (("jpeg", {}), ("progressive", {"progressive": True})):
        buffer = io.BytesIO()
        photo.save(buffer, format="JPEG", quality=85, **extra)
        out[name] = buffer.getvalue()
    return out


SEEDS = _seeds()


def _png_dimensions(data: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR declaring ``width`` x ``height``, its CRC recomputed (so only the size is wrong)."""
    if data[12:16] != b"IHDR":
        return data
    body = struct.pack(">II", width, height) + data[24:29]
    return data[:16] + body + struct.pack(">I", zlib.crc32(b"IHDR" + body)) + data[33:]


def _jpeg_dimensions(data: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOF0 or SOF2) declaring ``height`` x ``width`` (16 bits each)."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            return data[:at + 5] + struct.pack(">HH", height & 0xFFFF, width & 0xFFFF) + data[at + 9:]
    return data


@st.composite
def mutated_images(draw) -> bytes:
    kind = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[kind])
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(("flip", "header", "truncate", "dimensions", "splice")))
        if edit == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "header" and data:
            at = draw(st.integers(0, min(len(data), 64) - 1))
            data[at:at + 4] = draw(st.binary(min_size=1, max_size=4))
        elif edit == "truncate":
            data = data[:draw(st.integers(0, len(data)))]
        elif edit == "dimensions":
            width, height = draw(st.integers(1, 1 << 31)), draw(st.integers(1, 1 << 31))
            change = _png_dimensions if kind == "png" else _jpeg_dimensions
            data = bytearray(change(bytes(data), width, height))
        elif edit == "splice" and data:
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
    return bytes(data)


@settings(FUZZ, max_examples=1000)
@given(data=mutated_images())
def test_decoder_answers_pixels_or_a_typed_error(data):
    try:
        pixels = load_image(data, max_pixels=MAX_PIXELS)
    except FacestyleError as error:
        event(f"refused: {type(error).__name__}")
        assert str(error).startswith("<bytes>: "), error  # the message names the input
        return
    event("decoded")
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    assert pixels.shape[0] * pixels.shape[1] <= MAX_PIXELS


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_declared_size_beyond_the_limit_is_refused(kind):
    change = _png_dimensions if kind == "png" else _jpeg_dimensions
    with pytest.raises(FacestyleError, match=r"<bytes>: .*(pixels|limit)"):
        load_image(change(SEEDS[kind], 60_000, 60_000), max_pixels=MAX_PIXELS)


# -- gallery import ------------------------------------------------------------------------------
DEEP = "\x00deep\x00"  # stands for a value nested far beyond any parser's recursion; replaced in the JSON text


def _chip() -> bytes:
    buffer = io.BytesIO()
    _photo().convert("RGB").crop((160, 40, 310, 190)).save(buffer, format="PNG")  # 150 x 150, the face
    return buffer.getvalue()


def _valid_export() -> dict:
    """What `gallery export` writes for a gallery of two people (one with a face chip), made by the Gallery API."""
    with tempfile.TemporaryDirectory() as folder:
        gallery = Gallery.open(Path(folder) / "source.db", MODEL)
        gallery.add("ann", np.array([0.1, 0.2, 0.3, 0.4], np.float32), "1" * 64, "ann.jpg", box=(1, 2, 30, 40),
                    chip=_chip())
        gallery.add("bo", np.array([0.5, -0.1, 0.0, 0.2], np.float32), "2" * 64)
        records = export_records(gallery.records())
        gallery.close()
    return {"model": MODEL.model, "precision": MODEL.precision, "model_sha256": MODEL.sha256, "records": records}


EXPORT = _valid_export()
RECORD_FIELDS = sorted(EXPORT["records"][0])
WRONG_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10 ** 400), 10 ** 400), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([10 ** 400, -(10 ** 40), 1e39, 1e308, "\ud800", "a\udfffb", "\x00", "", " ", "unknown", "a/b",
                     "x" * 5000, [], {}, [1, 2, 3], DEEP]),
    st.text(max_size=40), st.lists(st.floats(), max_size=6), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@st.composite
def mutated_exports(draw) -> tuple[str, str]:
    """(the JSON text, the label of the field replaced: what an error must name)."""
    doc = json.loads(json.dumps(EXPORT))
    target = draw(st.sampled_from(("top", "record", "element", "records")))
    value = draw(WRONG_VALUES)
    if target == "top":
        key = draw(st.sampled_from(("model", "precision", "model_sha256", "records")))
        doc[key], label = value, key
    elif target == "records":
        doc["records"].append(value)
        label = f"records[{len(doc['records']) - 1}]"
    else:
        i = draw(st.integers(0, len(doc["records"]) - 1))
        field = draw(st.sampled_from(RECORD_FIELDS))
        if target == "element" and isinstance(doc["records"][i].get(field), list):
            j = draw(st.integers(0, len(doc["records"][i][field]) - 1))
            doc["records"][i][field][j] = value
        else:
            doc["records"][i][field] = value
        label = f"records[{i}].{field}"
    text = json.dumps(doc).replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000)
    return text, label


def _contents(gallery: Gallery) -> tuple:
    return gallery.people(), [(r["name"], r["source_sha256"], r["embedding"]) for r in gallery.records()]


@settings(FUZZ, max_examples=400)
@given(case=mutated_exports())
def test_import_answers_a_typed_error_naming_the_field_or_imports(case):
    text, label = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.json"
        path.write_text(text)
        gallery = Gallery.open(Path(folder) / "g.db", MODEL)
        gallery.add("cy", np.zeros(4, np.float32), "3" * 64)
        before = _contents(gallery)
        try:
            added, total = import_file(gallery, path)
        except FacestyleError as error:
            event(f"refused: {type(error).__name__}")
            message = str(error)
            assert (isinstance(error, GalleryModelMismatchError) or "nested too deeply" in message
                    or label in message or (label.startswith("records[") and label.split(".")[0] in message)
                    or f": {label.split('[')[0]}:" in message), (label, message)
            assert _contents(gallery) == before  # a refused import writes nothing
        else:
            event("imported")
            after = _contents(gallery)
            assert 0 <= added <= total and len(after[1]) == len(before[1]) + added
            assert all(len(embedding) == 4 and all(np.isfinite(embedding)) for _, _, embedding in after[1])
        finally:
            gallery.close()


def test_a_refused_import_names_the_field_and_leaves_the_gallery_as_it_was(tmp_path):
    doc = json.loads(json.dumps(EXPORT))
    doc["records"][1]["embedding"][2] = 10 ** 400
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc))
    gallery = Gallery.open(tmp_path / "g.db", MODEL)
    before = _contents(gallery)
    with pytest.raises(FacestyleError, match=r"records\[1\]\.embedding: expected 4 finite numbers"):
        import_file(gallery, path)
    assert _contents(gallery) == before == ([], [])
    assert import_file(gallery, _written(tmp_path, EXPORT)) == (2, 2)  # the valid export itself imports whole
    gallery.close()


def _written(folder: Path, doc: dict) -> Path:
    path = folder / "valid.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("value", [1e39, -3.5e38, 1e308])
def test_an_embedding_value_no_float32_holds_is_refused_naming_the_field(tmp_path, value):
    """Finite as a JSON number, infinite as a float32: refused by the field check, naming the file, entry and field."""
    doc = json.loads(json.dumps(EXPORT))
    doc["records"][0]["embedding"][1] = value
    path = _written(tmp_path, doc)
    gallery = Gallery.open(tmp_path / "g.db", MODEL)
    with pytest.raises(FacestyleError, match=r"valid\.json: records\[0\]\.embedding: expected 4 finite numbers"):
        import_file(gallery, path)
    assert _contents(gallery) == ([], [])
    gallery.close()
