"""HTTP vs in-process: throughput and p50/p99 of embed, verify and stylize at 1, 8 and 64 concurrent clients.

One `facestyle serve` on 127.0.0.1 (a subprocess, default settings) and the runtime in this process
(FaceAnalyzer / Stylizer called from the same number of threads), on the same photo, in the same run.
Bounded: at most ``--requests`` calls per client and ``--max-total`` per case.

    python benchmarks/serve_load.py --engines engines [--out benchmarks/results]

Writes serve-load-<machine>.json and serve-load-<machine>.png.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model  # noqa: E402 (after the sys.path line that finds it)

CLIENTS = (1, 8, 64)


def start_server(engines: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "facestyle.serve", "--engines", str(engines), "--port", "0",
                                "--stylize-queue", "64"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if match:
            url = match.group(1)
            break
    else:
        raise SystemExit(f"server did not start ({process.wait()})")
    import httpx

    while httpx.get(url + "/readyz", timeout=10).status_code != 200:
        time.sleep(0.2)
    return process, url


def run_clients(call, clients: int, per_client: int) -> dict:
    """``clients`` threads each making ``per_client`` calls; latencies, throughput, failures."""
    latencies, failures, lock = [], [], threading.Lock()

    def client(i):
        state = {}
        for _ in range(per_client):
            start = time.perf_counter()
            try:
                call(state)
                ok = True
            except Exception as error:  # noqa: BLE001 (counted and reported)
                ok, why = False, f"{type(error).__name__}: {error}"
            with lock:
                latencies.append(time.perf_counter() - start)
                if not ok:
                    failures.append(why)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {"clients": clients, "requests": len(latencies), "failures": len(failures),
            "first_failure": failures[0] if failures else None, "wall_s": round(wall, 3),
            "throughput_per_s": round(len(latencies) / wall, 2),
            "p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1)}


def http_calls(url: str, photo: bytes, other: bytes, style: str, side: int):
    import httpx

    def client(state):
        if "c" not in state:
            state["c"] = httpx.Client(base_url=url, timeout=300)
        return state["c"]

    def check(r):
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
        return r

    return {
        "embed": lambda s: check(client(s).post("/v1/embed", files=[("images", ("p.png", photo, "image/png"))])),
        "verify": lambda s: check(client(s).post("/v1/verify", files=[("a", ("a.png", photo, "image/png")),
                                                                        ("b", ("b.png", other, "image/png"))])),
        "stylize": lambda s: check(client(s).post(f"/v1/stylize?style={style}&max_side={side}",
                                                  files=[("image", ("p.png", photo, "image/png"))])),
    }


def in_process_calls(engines: Path, photo: bytes, other: bytes, style: str, side: int):
    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.images import encode_image, load_image
    from facestyle.style.stylizer import Stylizer

    analyzer = FaceAnalyzer.from_engines(engines)
    stylizer = Stylizer.from_engines(style, engines)
    return {
        "embed": lambda s: analyzer.faces(photo),
        "verify": lambda s: analyzer.verify(photo, other),
        "stylize": lambda s: encode_image(stylizer.stylize(load_image(photo), max_side=side), "JPEG"),
    }


def plot(rows: list[dict], path: Path, title: str) -> None:
    from PIL import Image, ImageDraw

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    panel_w, panel_h, margin = 300, 260, 50
    image = Image.new("RGB", (panel_w * len(tasks) + margin, panel_h + 90), "white")
    draw = ImageDraw.Draw(image)
    colours = {"http": (214, 39, 40), "in-process": (31, 119, 180)}
    draw.text((10, 8), title, fill="black")
    for k, task in enumerate(tasks):
        left, top = margin + k * panel_w, 40
        right, bottom = left + panel_w - 60, top + panel_h - 40
        mine = [r for r in rows if r["task"] == task]
        peak = max(r["throughput_per_s"] for r in mine) * 1.15
        draw.rectangle([left, top, right, bottom], outline="black")
        draw.text((left, top - 14), f"{task}: requests/s", fill="black")
        for i in range(5):
            y = bottom - i / 4 * (bottom - top)
            draw.line([(left, y), (right, y)], fill=(225, 225, 225))
            draw.text((left - 40, y - 6), f"{peak * i / 4:.1f}", fill="black")
        xs = {c: left + 20 + i * (right - left - 40) / (len(CLIENTS) - 1) for i, c in enumerate(CLIENTS)}
        for c, x in xs.items():
            draw.text((x - 6, bottom + 6), str(c), fill="black")
        for mode, colour in colours.items():
            pts = [(xs[r["clients"]], bottom - r["throughput_per_s"] / peak * (bottom - top))
                   for r in mine if r["mode"] == mode]
            if len(pts) > 1:
                draw.line(pts, fill=colour, width=2)
            for x, y in pts:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((left + 40, bottom + 22), "concurrent clients", fill="black")
    for i, (mode, colour) in enumerate(colours.items()):
        draw.text((margin + 150 * i, panel_h + 70), f"- {mode}", fill=colour)
    from facestyle.manifest import atomic_write_bytes
    from facestyle.plots import png_bytes

    atomic_write_bytes(path, png_bytes(image))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", type=Path, default=Path("engines"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--requests", type=int, default=8, help="calls per client (default 8)")
    parser.add_argument("--max-total", type=int, default=128, help="calls per case at most (default 128)")
    parser.add_argument("--side", type=int, default=256, help="stylize at most this size (default 256)")
    parser.add_argument("--machine", default=None, help="name for the results (default: the CPU)")
    args = parser.parse_args()

    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.images import encode_image, load_image
    from facestyle.style.stylizer import list_styles

    photo_pixels = load_image(skimage_data_dir() / "astronaut.png")
    photo = encode_image(photo_pixels, "PNG")
    other = encode_image(np.ascontiguousarray(photo_pixels[:, ::-1]), "PNG")  # the astronaut mirrored: same person
    style = list_styles(args.engines)[0]["name"]
    process, url = start_server(args.engines)
    rows = []
    try:
        modes = {"http": http_calls(url, photo, other, style, args.side),
                 "in-process": in_process_calls(args.engines, photo, other, style, args.side)}
        for task in ("embed", "verify", "stylize"):
            for clients in CLIENTS:
                per_client = max(1, min(args.requests, args.max_total // clients))
                for mode, calls in modes.items():
                    calls[task]({})  # warm-up
                    row = {"task": task, "mode": mode, **run_clients(calls[task], clients, per_client)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        import httpx

        from facestyle.serve.metrics import parse_text

        m = parse_text(httpx.get(url + "/metrics").text)
        batches = {"embed_mean_batch": m['facestyle_batch_size_sum{batcher="embed"}']
                   / m['facestyle_batch_size_count{batcher="embed"}']}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    machine = args.machine or cpu_model()
    slug = re.sub(r"[^a-z0-9]+", "-", machine.lower()).strip("-")[:40]
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine, "photo": "scikit-image astronaut 512x512 PNG", "stylize_side": args.side,
              "style": style, "server": "facestyle serve defaults (workers 2, max batch 32)", **batches, "rows": rows}
    from facestyle.manifest import atomic_write_bytes

    atomic_write_bytes(args.out / f"serve-load-{slug}.json", json.dumps(result, indent=2).encode())
    plot(rows, args.out / f"serve-load-{slug}.png", f"facestyle serve vs in-process, {machine}")
    print(f"wrote {args.out / f'serve-load-{slug}.json'} and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
