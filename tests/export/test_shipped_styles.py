"""Every shipped style: the grid-free edge2 net, no periodic pattern on real photos, and nearer the painting
than the photo is (on the independent VGG16 of ``facestyle.style.quality``: under three quarters of the photo's style
distance, on each photo; measured 0.18-0.65 of it, the closest call the Turner on the cat)."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facestyle.export.style.shipped import WEIGHTS_DIR, read_card, shipped_styles, style_module_from_safetensors  # noqa: E402 (after importorskip)
from facestyle.style.quality import grid_ratio  # noqa: E402 (after importorskip)

PAINTINGS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "style"
# The shipped styles' bar; measured on these photos 1.07-1.29 (the old edge nets 2.9-3.9, the photos themselves
# 1.04-1.11). Three styles hold it through the shift-consistency term they were trained with.
GRID_LIMIT = 1.3


def photos(side: int = 384) -> dict[str, np.ndarray]:
    """Public-domain scikit-image photos (a face, a cat, a still life), centre-cropped to side x side."""
    from PIL import Image

    from facestyle.export.sample_inputs import skimage_data_dir
    from facestyle.images import load_image

    out = {}
    for name in ("astronaut.png", "chelsea.png", "coffee.png"):
        image = load_image(skimage_data_dir() / name)
        s = min(image.shape[:2])
        out[name] = np.asarray(Image.fromarray(image[:s, :s]).resize((side, side), Image.LANCZOS))
    return out


def stylise(style: str, image: np.ndarray) -> np.ndarray:
    module, _ = style_module_from_safetensors(WEIGHTS_DIR / f"{style}.safetensors")
    with torch.no_grad():
        out = module(torch.from_numpy(image.transpose(2, 0, 1)[None].astype(np.float32)))
    return out[0].permute(1, 2, 0).clamp(0, 255).round().byte().numpy()


def test_six_styles_ship():
    assert shipped_styles() == ["composition_vii", "starry_night", "the_scream", "the_shipwreck_of_the_minotaur", "udnie", "wave"]


@pytest.mark.parametrize("style", shipped_styles())
def test_a_shipped_style_has_no_grid_and_says_how_it_was_made(style):
    card = read_card(WEIGHTS_DIR / f"{style}.safetensors")
    assert card["variant"] == "edge2" and card["command"].startswith("facestyle train-style") and card["warm_start"]
    for name, photo in photos().items():
        ratio = grid_ratio(stylise(style, photo))
        assert ratio <= GRID_LIMIT, f"{style} on {name}: grid ratio {ratio:.2f}"


@pytest.mark.skipif(not PAINTINGS.is_dir(), reason="the paintings are in ../shared/data/style")
@pytest.mark.parametrize("style", shipped_styles())
def test_a_shipped_style_moves_the_photo_towards_its_painting(style):
    from facestyle.images import load_image
    from facestyle.style.quality import VggStatistics

    stats = VggStatistics(threads=1)
    painting = load_image(PAINTINGS / f"{style}.jpg")
    s = min(painting.shape[:2])
    from PIL import Image

    target = stats.grams(np.asarray(Image.fromarray(painting[:s, :s]).resize((384, 384), Image.LANCZOS)))
    for name, photo in photos().items():
        before, after = stats.style_distance(photo, target), stats.style_distance(stylise(style, photo), target)
        # Measured 0.18-0.65 of the photo's (the Turner on the cat and wave on the astronaut the highest: the
        # nets keep faces and the photo's light and dark).
        assert after < 0.75 * before, f"{style} on {name}: style distance {after:.3g}, the photo's {before:.3g}"
        assert stats.content_distance(stylise(style, photo), photo) > 0
