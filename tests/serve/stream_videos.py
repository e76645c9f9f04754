"""Videos for the cameras of the service: a real photo's face moving, written with OpenCV.

Test modules take the fixtures with ``from stream_videos import *``.
"""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="OpenCV (the video extra) is not installed: pip install 'facestyle[video]'")

__all__ = ["astronaut_photo", "astronaut_walk", "WIDTH", "HEIGHT"]
WIDTH, HEIGHT, FPS = 320, 240, 12.0


@pytest.fixture(scope="module")
def astronaut_photo():
    from facestyle.export.sample_inputs import skimage_data_dir

    return skimage_data_dir() / "astronaut.png"


@pytest.fixture(scope="module")
def astronaut_walk(astronaut_photo, tmp_path_factory):
    """20 s (240 frames, 12 fps, 320x240) of a window panning 4 px a frame to and fro across scikit-image's
    astronaut: her face (~80 px) in every frame. Played at its own rate, it lasts long enough to be watched."""
    from facestyle.images import load_image

    photo = load_image(astronaut_photo)
    path = tmp_path_factory.mktemp("video") / "astronaut.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    for i in range(240):
        step = i % 48 if i % 48 < 24 else 48 - i % 48
        window = photo[20 : 20 + HEIGHT, 100 + 4 * step : 100 + 4 * step + WIDTH]
        writer.write(cv2.cvtColor(np.ascontiguousarray(window), cv2.COLOR_RGB2BGR))
    writer.release()
    return path
