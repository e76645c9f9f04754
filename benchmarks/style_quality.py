"""Style and content cost of each shipped style: fast network vs Gatys optimisation vs the photo itself.

    python benchmarks/style_quality.py [--engines engines] [--photos DIR] [--count 3] [--side 256]
                                       [--steps 100] [--json out.json] [--grid docs/style-grid.jpg]

For each style and each content photo (default ../shared/data/content/test_photos, never seen in
training), at ``--side`` pixels on the longer side:
  (a) fast: the shipped network through the runtime Stylizer (onnxruntime);
  (b) optimised: Gatys et al., Adam on the pixels for ``--steps`` steps from the photo, on the very
      cost the network was trained with (weights from its card);
  (c) content: the photo unchanged.
Costs are the training costs on the same VGG16 layers: J_content at relu2_2, J_style over relu1_2..relu4_3,
with the painting resized to the photo's area (Gram matrices sum over positions). The grid (content |
style | fast | optimised) uses public-domain scikit-image photos, because test_photos may not be
redistributed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _machine import cpu_model  # benchmarks/ is on sys.path when a script runs
from PIL import Image

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def fit(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = side / max(h, w)
    return np.asarray(Image.fromarray(image).resize((round(w * scale), round(h * scale)), Image.LANCZOS))


def same_area(style: np.ndarray, like: np.ndarray) -> np.ndarray:
    h, w = style.shape[:2]
    scale = np.sqrt(like.shape[0] * like.shape[1] / (h * w))
    return np.asarray(Image.fromarray(style).resize((round(w * scale), round(h * scale)), Image.LANCZOS))


def costs(vgg, weights, content: np.ndarray, style: np.ndarray, image: np.ndarray) -> dict:
    import torch

    from facestyle.export.style.costs import content_cost, style_cost

    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32).transpose(2, 0, 1)[None].copy())  # noqa: E731
    with torch.no_grad():
        fc, fs, fg = vgg(t(content)), vgg(t(style)), vgg(t(image))
        jc = content_cost(fc[weights.content_layer], fg[weights.content_layer]).item()
        js = style_cost(fs, fg, weights.style_layers).item()
    return {"content": jc, "style": js}


def weights_of(card: dict):
    from facestyle.export.style.optimize import StyleCostWeights

    config = card.get("config", {})
    return StyleCostWeights(alpha=config.get("content_weight", 1.0), beta=config.get("style_weight", 1e5),
                            tv=config.get("tv_weight", 1e-2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="engines")
    parser.add_argument("--photos", type=Path, default=SHARED / "content" / "test_photos")
    parser.add_argument("--count", type=int, default=3, help="photos per style (default 3; Gatys is the slow part)")
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json")
    parser.add_argument("--grid", type=Path, help="write the content | style | fast | optimised grid here")
    args = parser.parse_args()

    from facestyle.export.sample_inputs import natural_images
    from facestyle.export.style.optimize import optimize_image
    from facestyle.export.style.shipped import WEIGHTS_DIR
    from facestyle.export.style.vgg import vgg16_from_onnx
    from facestyle.images import load_image
    from facestyle.style.stylizer import Stylizer, list_styles

    if not args.photos.is_dir():
        raise SystemExit(f"{args.photos}: no content photos (needs ../shared/data)")
    vgg = vgg16_from_onnx()
    photos = sorted(args.photos.glob("*.jpg"))[: args.count]
    grid_photos = natural_images([(400, 400), (400, 400), (400, 400), (400, 400)])  # public domain
    rows, grid = [], []
    for i, built in enumerate(list_styles(args.engines)):
        name = built["name"]
        card = json.loads((WEIGHTS_DIR / f"{name}.card.json").read_text())
        weights = weights_of(card)
        painting = load_image(SHARED / "style" / f"{card['style']}.jpg")
        stylizer = Stylizer.from_engines(name, args.engines)
        per_photo = []
        for path in photos:
            content = fit(load_image(path), args.side)
            style = same_area(painting, content)
            started = time.perf_counter()
            optimised, _ = optimize_image(vgg, content, style, steps=args.steps, weights=weights)
            gatys_s = time.perf_counter() - started
            started = time.perf_counter()
            fast = stylizer.stylize(content)
            fast_s = time.perf_counter() - started
            entry = {"photo": path.name, "fast_seconds": round(fast_s, 3), "optimised_seconds": round(gatys_s, 1)}
            for label, image in (("fast", fast), ("optimised", optimised), ("content", content)):
                entry[label] = costs(vgg, weights, content, style, image)
            per_photo.append(entry)
            print(name, path.name, {k: entry[k] for k in ("fast", "optimised", "content")}, flush=True)
        mean = lambda label, term: float(np.mean([e[label][term] for e in per_photo]))  # noqa: E731
        rows.append({"style": name, "weights": {"alpha": weights.alpha, "beta": weights.beta},
                     **{f"{label}_{term}": mean(label, term) for label in ("fast", "optimised", "content")
                        for term in ("style", "content")},
                     "fast_seconds": float(np.mean([e["fast_seconds"] for e in per_photo])),
                     "optimised_seconds": float(np.mean([e["optimised_seconds"] for e in per_photo])),
                     "photos": per_photo})
        if args.grid:
            content = fit(grid_photos[i % len(grid_photos)], args.side)
            optimised, _ = optimize_image(vgg, content, same_area(painting, content), steps=args.steps, weights=weights)
            grid.append([content, fit(painting, args.side), stylizer.stylize(content), optimised])
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"benchmark": "style_quality", "machine": {"cpu": cpu_model()},
                                               "side": args.side, "gatys_steps": args.steps, "rows": rows}, indent=2) + "\n")
    if args.grid:
        save_grid(grid, args.grid)


def print_table(rows: list[dict]) -> None:
    print("| style | J_style fast | J_style optimised | J_style photo | J_content fast | J_content optimised | fast s | optimised s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['style']} | {r['fast_style']:.3g} | {r['optimised_style']:.3g} | {r['content_style']:.3g} | "
              f"{r['fast_content']:.3g} | {r['optimised_content']:.3g} | {r['fast_seconds']:.2f} | {r['optimised_seconds']:.0f} |")


def save_grid(grid: list[list[np.ndarray]], path: Path, cell: int = 200) -> None:
    """Rows of (content | style | fast | optimised), each cell fitted into a cell x cell square."""
    canvas = Image.new("RGB", (4 * cell, len(grid) * cell), "white")
    for r, row in enumerate(grid):
        for c, image in enumerate(row):
            tile = Image.fromarray(image)
            tile.thumbnail((cell - 4, cell - 4), Image.LANCZOS)
            canvas.paste(tile, (c * cell + (cell - tile.width) // 2, r * cell + (cell - tile.height) // 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, quality=88)


if __name__ == "__main__":
    main()
