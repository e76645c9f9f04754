"""Real photos for build-time validation, from public-domain images that ship in scikit-image.

The tests prove parity on dlib-aligned face chips; the build checks its ONNX against PyTorch on
these natural crops (the astronaut's face first), so a fresh machine needs no data folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from facestyle.errors import MissingDependencyError
from facestyle.images import load_image

# (file in skimage/data, crop box x0, y0, x1, y1): the first is Eileen Collins' face.
_CROPS = (
    ("astronaut.png", 152, 54, 288, 190),
    ("astronaut.png", 100, 0, 400, 300),
    ("chelsea.png", 60, 20, 300, 260),
    ("coffee.png", 150, 50, 450, 350),
    ("rocket.jpg", 100, 150, 400, 427),
    ("camera.png", 150, 20, 380, 250),
    ("motorcycle_left.png", 200, 100, 600, 500),
    ("retina.jpg", 300, 300, 1000, 1000),
)


def skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "validation photos come from scikit-image's public-domain data: pip install 'facestyle[export]'"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def natural_chips(count: int = 8, size: int = 150) -> np.ndarray:
    """(count, size, size, 3) uint8 RGB crops of real photos."""
    root = skimage_data_dir()
    chips = []
    for name, *box in (_CROPS * (count // len(_CROPS) + 1))[:count]:
        image = Image.fromarray(load_image(root / name)).crop(tuple(box))
        chips.append(np.asarray(image.resize((size, size), Image.BILINEAR)))
    return np.stack(chips)


def natural_images(sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Real photos resized to each (height, width), for models that take any image size."""
    root = skimage_data_dir()
    names = [name for name, *_ in _CROPS]
    out = []
    for i, (h, w) in enumerate(sizes):
        image = Image.fromarray(load_image(root / names[i % len(names)]))
        out.append(np.asarray(image.resize((w, h), Image.BILINEAR)))
    return out
