import io

import numpy as np
import pytest
from PIL import Image

from facestyle.errors import BadImageError
from facestyle.images import load_image


def encode(image: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def test_rgb_png_roundtrips(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(pixels).save(path)
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, pixels)


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (10, 20, 30, 255))
    out = load_image(encode(rgba))
    np.testing.assert_array_equal(out[0], [[255, 255, 255], [10, 20, 30]])


@pytest.mark.parametrize(
    "image, expected",
    [
        (Image.new("L", (1, 1), 77), [77, 77, 77]),
        (Image.fromarray(np.array([[65535]], np.uint16)), [255, 255, 255]),  # I;16 scaled, not clipped
        (Image.new("CMYK", (1, 1), (0, 255, 255, 0)), [255, 0, 0]),
    ],
)
def test_modes_are_converted_deliberately(image, expected):
    fmt = "JPEG" if image.mode == "CMYK" else "TIFF" if image.mode.startswith("I") else "PNG"
    out = load_image(encode(image, fmt))
    assert out.shape == (1, 1, 3)
    np.testing.assert_allclose(out[0, 0], expected, atol=2)


def test_exif_orientation_is_applied():
    wide = Image.new("RGB", (4, 2), (200, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = load_image(encode(wide, "JPEG", exif=exif.tobytes()))
    assert out.shape == (4, 2, 3)


def test_error_paths_name_the_file(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(BadImageError, match=r"empty\.jpg: file is empty \(0 bytes\)"):
        load_image(empty)
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(BadImageError, match=r"notes\.jpg: not a readable image"):
        load_image(text)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(encode(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")[:300])
    with pytest.raises(BadImageError, match=r"cut\.jpg: corrupt or truncated image"):
        load_image(cut)
    with pytest.raises(BadImageError, match=r"missing\.png: no such file"):
        load_image(tmp_path / "missing.png")


def test_decompression_bomb_is_rejected_before_decoding():
    big = encode(Image.new("L", (3000, 3000)))
    with pytest.raises(BadImageError, match=r"3000x3000 is 9,000,000 pixels, over the limit of 1,000,000"):
        load_image(big, max_pixels=1_000_000)


def test_text_file_error_names_the_file_without_python_reprs(tmp_path):
    text = tmp_path / "readme.jpg"
    text.write_text("this is not a photo\n")
    with pytest.raises(BadImageError) as caught:
        load_image(text)
    message = str(caught.value)
    assert message.startswith(f"{text}: not a readable image (the file holds text")
    assert "object at 0x" not in message and "BytesIO" not in message


def test_huge_png_gives_the_clean_error_and_no_pillow_warning(tmp_path):
    import warnings

    huge = tmp_path / "huge.png"
    Image.new("1", (12000, 12000)).save(huge)  # 144 Mpx: over Pillow's warning limit, under its error limit
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        with pytest.raises(BadImageError, match=r"huge\.png: 12000x12000 is 144,000,000 pixels, over the limit"):
            load_image(huge)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (15000, 15000)).save(bomb)  # over Pillow's own error limit
    with pytest.raises(BadImageError, match=r"bomb\.png: far over the limit of 64,000,000 pixels"):
        load_image(bomb)
