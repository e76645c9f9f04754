"""The Pillow line chart: each curve drawn in its own colour where its points fall."""

import numpy as np

from facestyle.images import load_image
from facestyle.plots import _COLOURS, save_curves_png


def test_curves_are_drawn_in_their_colours_at_their_points(tmp_path):
    path = save_curves_png(tmp_path / "c.png", {"rising": ([0, 50, 100], [0.5, 0.75, 1.0]),
                                                "flat": ([0, 100], [0.6, 0.6])}, "t", "steps", "accuracy")
    image = load_image(path)
    assert image.shape == (420, 640, 3)
    for colour, (x, y) in ((_COLOURS[0], (340, 200)), (_COLOURS[1], (340, 296))):  # (50, 0.75) and (50, 0.6)
        patch = image[y - 3:y + 4, x - 3:x + 4].reshape(-1, 3)
        assert (np.abs(patch.astype(int) - colour).sum(1) < 30).any(), (colour, x, y)
    assert not (np.abs(image[296 - 3:296 + 4, 100].astype(int) - _COLOURS[0]).sum(1) < 30).any()
