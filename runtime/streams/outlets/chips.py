"""The best face of each track as a small JPEG (base64), for events that carry it (``--event-chips``).

Cut from the frames the watch yields (``watch(..., keep_pixels=True)``): the face's box with a margin, from the
frame where the track's face was of the best quality (the largest, where the watch reports no quality), at most
``CHIP_SIDE`` pixels a side. A track's events that come before its frame in a tick (``track_start``,
``identified``) are held until that frame has been seen, so even the first event of a track has its face.
"""

from __future__ import annotations

import base64

import numpy as np

from ...errors import BadInputError
from ..events import Event, FrameResult

CHIP_SIDE = 160
MARGIN = 0.25  # of the box's side, added all round: the whole head, as a person would crop it
HELD = ("track_start", "identified")  # events the watch yields before the frame of the same tick


class ChippedEvent:
    """An event with its track's chip: reads as the event, and its JSON has ``"chip"`` (base64 JPEG)."""

    def __init__(self, event: Event, chip: str):
        self._event, self.chip = event, chip

    def __getattr__(self, name):
        return getattr(self._event, name)

    def to_json(self) -> dict:
        return {**self._event.to_json(), "chip": self.chip}


class TrackChips:
    """``take(item)`` -> the events ready to send, each with its track's chip where it has one."""

    def __init__(self):
        self._best: dict[tuple[str, int], tuple[float, np.ndarray]] = {}
        self._encoded: dict[tuple[str, int], str] = {}
        self._held: dict[str, list[Event]] = {}

    def take(self, item) -> list:
        if isinstance(item, FrameResult):
            if item.analysed:
                self._see(item)
            return self._release(item.source)
        if item.event in HELD:
            self._held.setdefault(item.source, []).append(item)
            return []
        out = self._release(item.source) + [self._with_chip(item)]
        if item.event == "track_end":
            self._best.pop((item.source, item.track), None)
            self._encoded.pop((item.source, item.track), None)
        return out

    def flush(self) -> list:
        return [e for source in list(self._held) for e in self._release(source)]

    def _release(self, source: str) -> list:
        return [self._with_chip(e) for e in self._held.pop(source, [])]

    def _with_chip(self, event: Event):
        key = (event.source, event.track)
        if key not in self._best:
            return event
        if key not in self._encoded:
            self._encoded[key] = _jpeg_base64(self._best[key][1])
        return ChippedEvent(event, self._encoded[key])

    def _see(self, result: FrameResult) -> None:
        if result.pixels is None and result.faces:
            raise BadInputError(f"event chips of {result.source}: the frames are needed, watch(..., keep_pixels=True)")
        for face in result.faces:
            left, top, right, bottom = face.box
            score = face.quality if face.quality is not None else float((right - left) * (bottom - top))
            key = (result.source, face.track)
            if key not in self._best or score > self._best[key][0]:
                chip = _crop(result.pixels, face.box)
                if chip.size:  # a box predicted beyond the frame has nothing to show
                    self._best[key] = (score, chip)
                    self._encoded.pop(key, None)


def _crop(pixels: np.ndarray, box) -> np.ndarray:
    left, top, right, bottom = box
    pad = round(MARGIN * max(right - left, bottom - top))
    height, width = pixels.shape[:2]
    y0, y1 = max(top - pad, 0), min(bottom + pad + 1, height)
    x0, x1 = max(left - pad, 0), min(right + pad + 1, width)
    return pixels[y0:y1, x0:x1].copy()  # a copy: the frame itself is not kept


def _jpeg_base64(chip: np.ndarray) -> str:
    from PIL import Image

    from ...images import encode_image

    image = Image.fromarray(chip)
    image.thumbnail((CHIP_SIDE, CHIP_SIDE))
    return base64.b64encode(encode_image(np.asarray(image), "JPEG", quality=85)).decode("ascii")
