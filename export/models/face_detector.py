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


class DlibFaceDetector(nn.Module):
    """Input (N, 3, H, W) = (RGB - mean) / 256 of the tiled pyramid; output (N, 1, h, w) window scores."""

    def __init__(self):
        super().__init__()
        self.downsampler = nn.Sequential(
            ConvAffineRelu(3, 16, 2, 0), ConvAffineRelu(16, 32, 2, 0), ConvAffineRelu(32, 32, 2, 0)
        )
        self.features = nn.Sequential(*(ConvAffineRelu(32 if i == 0 else 45, 45, 1, 2) for i in range(3)))
        self.score = nn.Conv2d(45, 1, 9, 1, 4)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(self.downsampler(image)))


def module_from_dlib(weights: NetworkWeights) -> DlibFaceDetector:
    """``ModuleFromDlib`` for the detector (batch norm already folded into affines by the reader)."""
    return copy_dlib_weights(DlibFaceDetector(), weights)

