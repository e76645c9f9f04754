"""The fleet's deployment picture for docs/fleet.md, drawn with Pillow: cameras -> `facestyle watch` processes on
their machines -> one PostgreSQL gallery and one MQTT broker -> Home Assistant / Node-RED; Triton optional.

    python benchmarks/fleet_diagram.py            # writes docs/fleet.png
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1400, 780
INK, GREY, FAINT = (30, 30, 30), (110, 110, 110), (245, 245, 245)
BLUE, GREEN, ORANGE, PURPLE = (31, 119, 180), (44, 160, 44), (230, 120, 20), (148, 103, 189)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def font(path: str, size: int):
    return ImageFont.truetype(path, size) if Path(path).is_file() else ImageFont.load_default()


def box(draw, xy, title, lines=(), colour=INK, dashed=False, fill="white"):
    """A rounded box with a bold title and smaller lines under it."""
    left, top, right, bottom = xy
    draw.rounded_rectangle(xy, radius=12, fill=fill, outline=None if dashed else colour, width=3)
    if dashed:
        _dashed_outline(draw, xy, colour)
    draw.text((left + 14, top + 10), title, fill=colour, font=font(BOLD, 19))
    for i, line in enumerate(lines):
        draw.text((left + 14, top + 40 + i * 22), line, fill=INK, font=font(FONT, 15))


def _dashed_outline(draw, xy, colour, dash=12):
    left, top, right, bottom = xy
    for x in range(left, right, dash * 2):
        draw.line([(x, top), (min(x + dash, right), top)], fill=colour, width=3)
        draw.line([(x, bottom), (min(x + dash, right), bottom)], fill=colour, width=3)
    for y in range(top, bottom, dash * 2):
        draw.line([(left, y), (left, min(y + dash, bottom))], fill=colour, width=3)
        draw.line([(right, y), (right, min(y + dash, bottom))], fill=colour, width=3)


def arrow(draw, start, end, colour=GREY, label=None, both=False, dashed=False):
    (x0, y0), (x1, y1) = start, end
    if dashed:
        steps = max(int(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5 // 16), 1)
        for i in range(0, steps, 2):
            a, b = i / steps, min((i + 1) / steps, 1)
            draw.line([(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a), (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)],
                      fill=colour, width=3)
    else:
        draw.line([start, end], fill=colour, width=3)
    for tip, tail in ((end, start), (start, end)) if both else ((end, start),):
        _head(draw, tip, tail, colour)
    if label:
        draw.text(((x0 + x1) / 2 + 6, (y0 + y1) / 2 - 20), label, fill=colour, font=font(FONT, 14))


def _head(draw, tip, tail, colour, size=12):
    (x1, y1), (x0, y0) = tip, tail
    length = max(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5, 1e-6)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    left = (x1 - size * ux + size * 0.5 * uy, y1 - size * uy - size * 0.5 * ux)
    right = (x1 - size * ux - size * 0.5 * uy, y1 - size * uy + size * 0.5 * ux)
    draw.polygon([tip, left, right], fill=colour)


def camera(draw, x, y, name):
    draw.rounded_rectangle((x, y, x + 150, y + 44), radius=8, fill=FAINT, outline=GREY, width=2)
    draw.ellipse((x + 10, y + 12, x + 30, y + 32), outline=INK, width=2)
    draw.text((x + 40, y + 13), name, fill=INK, font=font(FONT, 15))


def draw_fleet() -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    draw.text((30, 20), "A facestyle fleet", fill=INK, font=font(BOLD, 26))
    draw.text((30, 56), "cameras -> watch processes (one per machine or group of cameras) -> "
              "one PostgreSQL gallery + one MQTT broker -> home automation", fill=GREY, font=font(FONT, 16))
    machines = [("machine A (door, hall)", 120, ["rtsp://door", "rtsp://hall"]),
                ("machine B (yard, garage)", 380, ["rtsp://yard", "rtsp://garage"])]
    for title, top, cams in machines:
        for i, name in enumerate(cams):
            camera(draw, 30, top + 30 + i * 90, name)
            arrow(draw, (180, top + 52 + i * 90), (300, top + 52 + i * 90), GREY)
        box(draw, (300, top, 700, top + 200), title, [
            "facestyle watch --source ... --source ...",
            "  --gallery postgresql://gallery/faces",
            "  --mqtt mqtt://broker/facestyle",
            "detect -> track -> quality -> embed -> name",
            "(onnxruntime CPU/CUDA, TensorRT; or Triton)",
            "a search reads the generation counter:",
            "  new enrolments named, no restart"], BLUE)
    box(draw, (860, 110, 1240, 290), "PostgreSQL gallery", [
        "people + embeddings, one per photo",
        "meta.generation: bumped by every write",
        "watchers fetch only the rows added since",
        "",
        "facestyle enroll / gallery (any machine)"], GREEN)
    box(draw, (860, 370, 1240, 530), "MQTT broker (Mosquitto)", [
        "<prefix>/<source>/events: track_start,",
        "  identified, track_end, source_lost ...",
        "<prefix>/<source>/present (retained)",
        "<prefix>/status: online / offline (will)"], ORANGE)
    box(draw, (1010, 610, 1380, 740), "Home Assistant / Node-RED", [
        "subscribe to <prefix>/+/events",
        "automations on 'identified' names"], INK, fill=FAINT)
    box(draw, (300, 625, 820, 750), "Triton Inference Server (optional)", [
        "export-triton: the repository carries its runtime modules",
        "watch --triton URL: detector and embedder networks here,",
        "  tracking, naming and events stay on each machine"], PURPLE, dashed=True)
    for top in (120, 380):  # each watcher: gallery reads, events out
        arrow(draw, (700, top + 60), (860, 200), GREEN, "gallery" if top == 120 else None, both=True)
        arrow(draw, (700, top + 150), (860, 450), ORANGE, "events" if top == 380 else None)
    arrow(draw, (560, 580), (560, 625), PURPLE, "--triton (optional)", dashed=True)
    arrow(draw, (1150, 530), (1150, 610), ORANGE, "subscribe")
    draw.text((860, 550), "one database and one broker", fill=GREY, font=font(FONT, 14))
    draw.text((860, 570), "for every machine", fill=GREY, font=font(FONT, 14))
    draw.text((860, 590), "dashed: optional", fill=GREY, font=font(FONT, 14))
    return image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "fleet.png")
    args = parser.parse_args()
    handle, temp = tempfile.mkstemp(prefix=".fleet-", suffix=".png", dir=args.out.parent)
    os.close(handle)
    draw_fleet().save(temp, optimize=True)
    os.chmod(temp, 0o644)
    os.replace(temp, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
