"""dlib's MMOD CNN face detector's convolutions in PyTorch: a tiled pyramid tensor in, a score map out.

The pyramid, the decoding of scores into boxes and the NMS are numpy code in the runtime.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..dlib.network import NetworkWeights
from .face_embedder import ChannelAffine, copy_dlib_weights


class ConvAffineRelu(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, padding: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 5, stride, padding)
        self.affine = ChannelAffine(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.affine(self.conv(x)))


class TapSumConv(nn.Module):
    """A convolution with ONE output channel (stride 1), computed as a 1x1 convolution to one channel
    per kernel tap and the sum of those channels, each shifted by its tap.

    The same sum of products in another order (scores move by ~1e-6). Why: onnxruntime runs a Conv
    with one output channel as im2col + a matrix-vector product; for the detector's 9x9 score
    convolution over 45 channels that is a (45*81) x pixels buffer, 350 MB at 640 px, which made it
    the slowest layer (10-11 ms of a 36 ms int8 network). As taps it is a proper matrix product
    (81 output channels) plus 81 slices, ~1 ms.
    """

    def __init__(self, in_channels: int, kernel: int, padding: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, kernel, 1, padding)  # holds dlib's weights as they are

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, p = self.conv.kernel_size[0], self.conv.padding[0]
        taps = self.conv.weight[0].permute(1, 2, 0).reshape(k * k, -1, 1, 1)  # tap i*k + j
        bias = F.pad(self.conv.bias, (0, k * k - 1))  # on tap 0 only: each output sums it once
        y = F.conv2d(F.pad(x, (p, p, p, p)), taps, bias)
        end = lambda i: i - (k - 1) or None  # static slices: no shape arithmetic in the graph
        return sum(y[:, i * k + j:i * k + j + 1, i:end(i), j:end(j)] for i in range(k) for j in range(k))


class DlibFaceDetector(nn.Module):
    """Input (N, 3, H, W) = (RGB - mean) / 256 of the tiled pyramid; output (N, 1, h, w) window scores."""

    def __init__(self):
        super().__init__()
        self.downsampler = nn.Sequential(
            ConvAffineRelu(3, 16, 2, 0), ConvAffineRelu(16, 32, 2, 0), ConvAffineRelu(32, 32, 2, 0)
        )
        self.features = nn.Sequential(*(ConvAffineRelu(32 if i == 0 else 45, 45, 1, 2) for i in range(3)))
        self.score = TapSumConv(45, 9, 4)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(self.downsampler(image)))


def module_from_dlib(weights: NetworkWeights) -> DlibFaceDetector:
    """``ModuleFromDlib`` for the detector (batch norm already folded into affines by the reader)."""
    return copy_dlib_weights(DlibFaceDetector(), weights)

