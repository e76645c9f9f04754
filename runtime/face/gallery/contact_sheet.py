"""A contact sheet of suggested people: one row per cluster, its id and counts on the left, its best faces after."""

from __future__ import annotations

import time

import numpy as np

SIDE = 112  # pixels a face
LABEL_WIDTH = 190
PER_ROW = 6  # faces shown per cluster
MOST_ROWS = 40


def contact_sheet(clusters, chips: dict[int, bytes], per_row: int = PER_ROW, most_rows: int = MOST_ROWS) -> bytes:
    """JPEG bytes: the first ``most_rows`` of ``clusters`` (:class:`.unknowns.Cluster`), each with up to
    ``per_row`` of its best faces (``chips``: face id -> JPEG)."""
    from PIL import Image, ImageDraw

    from ...images import encode_image, load_image

    shown = list(clusters)[:most_rows]
    sheet = Image.new("RGB", (LABEL_WIDTH + per_row * (SIDE + 4) + 4, max(len(shown), 1) * (SIDE + 8) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    if not shown:
        draw.text((8, 8), "no unknown faces kept", fill="black")
    for row, cluster in enumerate(shown):
        top = 8 + row * (SIDE + 8)
        draw.text((8, top + 4), cluster.id, fill="black")
        draw.text((8, top + 22), f"{cluster.tracks} track(s), {len(cluster.faces)} face(s)", fill="black")
        draw.text((8, top + 40), f"first {_when(cluster.first_seen)}", fill="dimgray")
        draw.text((8, top + 56), f"last  {_when(cluster.last_seen)}", fill="dimgray")
        draw.text((8, top + 74), _tail(", ".join(cluster.sources)), fill="dimgray")
        for column, face in enumerate(cluster.faces[:per_row]):
            chip = Image.fromarray(load_image(chips[face.id])).resize((SIDE, SIDE), Image.BICUBIC)
            sheet.paste(chip, (LABEL_WIDTH + column * (SIDE + 4), top))
    return encode_image(np.asarray(sheet), "JPEG", quality=90)


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + "Z"


def _tail(text: str, most: int = 30) -> str:
    """The end of a long text (a file's name is at the end of its path)."""
    return text if len(text) <= most else "..." + text[-(most - 3):]
