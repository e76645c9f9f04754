"""Image decoding: the one function every command and API uses to turn a file into RGB pixels."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadImageError, BadInputError

DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000: far above any camera frame, far below a bomb


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB deliberately: alpha over white, 16/32-bit scaled to 8 bits."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if (mode.startswith("I;16") or values.max(initial=0) > 255) else 255.0
        if mode == "F" and values.max(initial=0) <= 1.0:
            peak = 1.0
        grey = np.clip(values / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def load_image(source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``source`` (a path or encoded bytes) to an (H, W, 3) uint8 RGB array, EXIF orientation applied.

    Raises BadImageError, naming the file, for missing, empty, truncated or non-image files and for
    images over ``max_pixels`` (decompression bombs).
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        data = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    except FileNotFoundError:
        raise BadImageError(f"{name}: no such file") from None
    except OSError as exc:
        raise BadImageError(f"{name}: cannot read ({exc.strerror})") from None
    if not data:
        raise BadImageError(f"{name}: file is empty (0 bytes), expected an image")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit gives the one clean error; Pillow's warning would come first.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _decode(data, name, max_pixels)
    except BadImageError:
        raise
    except UnidentifiedImageError:
        kind = "text" if _looks_like_text(data) else "data Pillow cannot decode"
        raise BadImageError(f"{name}: not a readable image (the file holds {kind}, not PNG, JPEG, ...)") from None
    except Image.DecompressionBombError:
        raise BadImageError(f"{name}: far over the limit of {max_pixels:,} pixels (possible decompression bomb)") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise BadImageError(f"{name}: corrupt or truncated image ({exc})") from None


def _decode(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        if width * height > max_pixels:
            raise BadImageError(
                f"{name}: {width}x{height} is {width * height:,} pixels, over the limit of {max_pixels:,} "
                "(possible decompression bomb)"
            )
        image.load()
        image = ImageOps.exif_transpose(image)
        return np.asarray(_to_rgb(image), dtype=np.uint8).copy()


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    return b"\0" not in head and all(32 <= b < 127 or b in b"\t\r\n" for b in head)


JPEG_QUALITY = 95


def encode_image(image: np.ndarray, fmt: str = "PNG", quality: int = JPEG_QUALITY) -> bytes:
    """(H, W, 3) uint8 RGB -> encoded bytes in Pillow format ``fmt`` (JPEG at ``quality``)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def image_format_for(path: str | Path) -> str:
    """Pillow's format name for an output path's extension (``.jpg`` -> ``JPEG``)."""
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())
    if fmt is None:
        raise BadInputError(f"{path}: unknown image extension (use .png, .jpg, ...)")
    return fmt


def save_image(image: np.ndarray, path: str | Path, quality: int = JPEG_QUALITY) -> Path:
    """Write ``image`` to ``path`` in the format its extension names, atomically (temp file, then rename)."""
    from .manifest import atomic_write_bytes

    atomic_write_bytes(path, encode_image(image, image_format_for(path), quality))
    return Path(path)
