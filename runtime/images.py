"""Image decoding: the one function every command and API uses to turn a file into RGB pixels."""

from __future__ import annotations

import io
import logging
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadImageError, BadInputError

DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000: far above any camera frame, far below a bomb

log = logging.getLogger(__name__)
METADATA_WARNING = re.compile(r"\b(tag|exif|makernote|metadata)\b", re.IGNORECASE)  # Pillow's words for them


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


def load_image(source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> np.ndarray:
    """Decode ``source`` (a path or encoded bytes) to an (H, W, 3) uint8 RGB array, EXIF orientation applied.

    Raises BadImageError, naming the file (or ``name``: where bytes came from), for missing, empty, truncated
    or non-image files and for images over ``max_pixels`` (decompression bombs). The decoder's own warnings
    become at most one log line naming the file (see :func:`_report_decoder_warnings`).
    """
    if name is None:
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
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # Our own pixel limit gives the one clean error; Pillow's warning would come first.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pixels = _decode(data, name, max_pixels)
        _report_decoder_warnings(name, caught)
        return pixels
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


def _report_decoder_warnings(name: str, caught: list) -> None:
    """Pillow warns once per damaged metadata tag (a phone photo's EXIF can give dozens), naming no file. The
    pixels decoded, so damaged metadata is logged at INFO (shown with -v); anything else at WARNING. One line."""
    messages = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    if not messages:
        return
    metadata = all(METADATA_WARNING.search(message) for message in messages)
    more = f" (and {len(messages) - 1} more like it)" if len(messages) > 1 else ""
    what = "damaged metadata skipped, pixels decoded" if metadata else "decoder warning"
    log.log(logging.INFO if metadata else logging.WARNING, "%s: %s: %s%s", name, what, messages[0], more)


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
