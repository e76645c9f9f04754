"""Feed-forward style transformer networks (after pytorch/examples fast_neural_style).

Reflection padding, InstanceNorm, residual blocks, nearest (or bilinear) upsampling + conv. The input is padded
symmetrically (by reflection) to a multiple of 4 (8 for the edge net) and the output cropped back, so any H x W comes back
at exactly its own size. Input and output are RGB in 0..255.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TransformerSize:
    channels: tuple[int, int, int]  # after the first conv, and after each of the two downsamplings
    residual_blocks: int
    end_kernel: int  # the first and last convolutions
    stem_stride: int = 1  # 2: the first conv already downsamples, and the last runs after a third upsampling
    upsample: str = "nearest"  # or "bilinear" (resize-then-convolve; ONNX Resize linear, half_pixel)
    full_res_channels: int = 0  # > 0 (stem_stride 2 only): a conv + norm + relu of this width at full resolution
    # after the last upsampling, before the conv to RGB, so the output is not one 3x3 conv of an upsampled map

    @property
    def multiple(self) -> int:
        """Height and width are padded to a multiple of the total downsampling."""
        return 4 * self.stem_stride


STANDARD = TransformerSize((32, 64, 128), 5, 9)  # Johnson et al., ~1.68M parameters
# For cameras. Full-resolution convolutions dominate the time of the standard shape (style-notes.md),
# so the edge net leaves full resolution at once: 3.5x faster than the 1-stride shape of the same width.
EDGE = TransformerSize((16, 32, 64), 3, 3, stem_stride=2)
# The edge net without its grid: its last nearest upsampling was followed directly by the 3x3
# conv to RGB, which can only give each 2x2 block of output pixels one of two phases of the same
# values (grid ratio 2.7-7 on photos, against 1.03-1.23 for the photos themselves). Here every
# upsampling is bilinear and one more conv-norm-relu runs at full resolution before the conv to RGB.
EDGE2 = TransformerSize((16, 32, 64), 3, 3, stem_stride=2, upsample="bilinear", full_res_channels=16)
SIZES = {"standard": STANDARD, "edge": EDGE, "edge2": EDGE2}


class ConvLayer(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride))


class ConvNormRelu(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__(ConvLayer(cin, cout, kernel, stride), nn.InstanceNorm2d(cout, affine=True), nn.ReLU())


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvNormRelu(channels, channels, 3), ConvLayer(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def upsample(mode: str) -> nn.Upsample:
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"upsample {mode!r}: expected 'nearest' or 'bilinear'")
    return nn.Upsample(scale_factor=2, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))


class UpsampleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, mode: str = "nearest"):
        super().__init__(upsample(mode), ConvLayer(cin, cout, 3), nn.InstanceNorm2d(cout, affine=True), nn.ReLU())


class StyleTransformer(nn.Module):
    def __init__(self, size: TransformerSize = STANDARD):
        super().__init__()
        c1, c2, c3 = size.channels
        self.size = size
        self.encoder = nn.Sequential(
            ConvNormRelu(3, c1, size.end_kernel, size.stem_stride), ConvNormRelu(c1, c2, 3, 2), ConvNormRelu(c2, c3, 3, 2)
        )
        self.residuals = nn.Sequential(*(ResidualBlock(c3) for _ in range(size.residual_blocks)))
        if size.full_res_channels and size.stem_stride != 2:
            raise ValueError("full_res_channels needs stem_stride 2 (a stride-1 net already ends at full resolution)")
        last, c_out = [], c1
        if size.stem_stride == 2:
            last.append(upsample(size.upsample))
            if size.full_res_channels:
                last.append(ConvNormRelu(c1, size.full_res_channels, 3))
                c_out = size.full_res_channels
        self.decoder = nn.Sequential(UpsampleConv(c3, c2, size.upsample), UpsampleConv(c2, c1, size.upsample), *last,
                                     ConvLayer(c_out, 3, size.end_kernel))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        m = self.size.multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        top, left = pad_h // 2, pad_w // 2
        x = F.pad(image / 255.0, (left, pad_w - left, top, pad_h - top), mode="reflect")
        y = self.decoder(self.residuals(self.encoder(x)))
        y = y[..., top : top + h, left : left + w] * 255.0
        # Clamped only when not training: in training a clamp zeroes the gradient of every pixel
        # outside 0..255, and such pixels (a quarter of them early on) then never learn the content.
        return y if self.training else y.clamp(0, 255)
