"""The face pipeline's memory is bounded by the image's pixels: the detector looks at most at MAX_DETECT_PIXELS
pixels, whatever the image size, and boxes of a resized image come back in the image's own coordinates."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from facestyle.face.detector import (
    DETECT_BYTES_PER_PIXEL,
    IMAGE_BYTES_PER_PIXEL,
    MAX_DETECT_PIXELS,
    detection_scale,
    peak_bytes,
    scale_boxes,
)

# Runs in a child process so that its peak resident memory (VmHWM) is the pipeline's alone.
CHILD = """
import json, sys
from facestyle.face.analyzer import FaceAnalyzer

def peak_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

analyzer = FaceAnalyzer.from_engines(sys.argv[1])
loaded = peak_kb()
faces = analyzer.faces(sys.argv[2])
print(json.dumps({"loaded_kb": loaded, "peak_kb": peak_kb(), "boxes": [[int(v) for v in f.box] for f in faces]}))
"""


def _analyse_in_child(engines, path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(engines), str(path)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def astronaut():
    from facestyle.export.sample_inputs import skimage_data_dir

    return np.asarray(Image.open(skimage_data_dir() / "astronaut.png").convert("RGB"))


def test_the_scale_keeps_small_images_and_counts_upsampling_against_the_budget():
    assert detection_scale(640, 480, 0) == 1 and detection_scale(640, 480, 1) == 2  # within: dlib's exact path
    assert detection_scale(1920, 1080, 0) == 1
    for width, height, upsample in [(3840, 2160, 0), (8000, 8000, 0), (1920, 1080, 1), (1000, 1000, 2)]:
        scale = detection_scale(width, height, upsample)
        assert scale < 2 ** upsample
        assert int(width * scale) * int(height * scale) <= MAX_DETECT_PIXELS


def test_boxes_of_a_resized_image_map_back_by_pixel_edges():
    boxes = np.array([[10, 20, 29, 59]])  # 20 x 40 px
    assert scale_boxes(boxes, 2.0, 2.0).tolist() == [[20, 40, 59, 119]]  # 40 x 80 px
    assert scale_boxes(boxes, 1.0, 1.0).tolist() == boxes.tolist()


@pytest.mark.parametrize("side", [4000, 8000])
def test_peak_memory_of_a_large_image_is_within_the_stated_bound(engines_dir, astronaut, tmp_path, side):
    """The astronaut enlarged to side x side: her face is found where it is, within the stated memory."""
    from facestyle.face.analyzer import FaceAnalyzer

    path = tmp_path / f"astronaut-{side}.png"
    Image.fromarray(astronaut).resize((side, side), Image.BILINEAR).save(path, compress_level=1)
    found = _analyse_in_child(engines_dir, path)
    used = (found["peak_kb"] - found["loaded_kb"]) * 1024
    bound = peak_bytes(side, side)
    print(f"{side}x{side}: {used / 2**20:.0f} MiB over the loaded models (bound {bound / 2**20:.0f} MiB)")
    assert used <= bound
    assert bound <= IMAGE_BYTES_PER_PIXEL * side * side + DETECT_BYTES_PER_PIXEL * MAX_DETECT_PIXELS
    [small] = [f.box for f in FaceAnalyzer.from_engines(engines_dir).faces(astronaut)]
    [large] = found["boxes"]
    scale = side / astronaut.shape[1]
    # The same face: the box scaled back overlaps the original's (pyramid levels 6/5 apart: sizes differ by ~20%)
    assert _iou(np.asarray(large) / scale, np.asarray(small)) > 0.6


def _iou(a, b) -> float:
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    return float(inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter))
