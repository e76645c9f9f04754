"""dlib's face recognition ResNet in PyTorch (150x150 RGB -> 128), with dlib's exact semantics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..dlib.network import NetworkWeights
from ..dlib.recognition import EMBEDDING_SIZE, STAGES


class ChannelAffine(nn.Module):
    """dlib's ``affine`` layer: a per-channel scale and shift (batch norm frozen at training end)."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


def zero_pad_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: tensors of different shapes are zero-padded at the end to the larger one.

    A down block adds a shortcut with fewer channels, and in the last two stages a 3x3 (1x1)
    block output to a 4x4 (2x2) pooled shortcut; a standard ResNet port gets both wrong.
    """
    target = [max(da, db) for da, db in zip(a.shape[1:], b.shape[1:])]

    def pad(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        if (c, h, w) == tuple(target):
            return t
        return F.pad(t, (0, target[2] - w, 0, target[1] - h, 0, target[0] - c))

    return pad(a) + pad(b)


class ResidualBlock(nn.Module):
    """dlib's ``ares`` / ``ares_down``: conv-affine-relu-conv-affine plus the shortcut, then relu."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool):
        super().__init__()
        stride, padding = (2, 0) if downsample else (1, 1)  # dlib pads only stride-1 convs
        self.downsample = downsample
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding)
        self.affine1 = ChannelAffine(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.affine2 = ChannelAffine(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.downsample else x
        return F.relu(zero_pad_add(y, shortcut))


class DlibFaceResNet(nn.Module):
    """Input: normalised chips (N, 3, 150, 150) = (RGB - mean) / 256. Output: raw (N, 128) embeddings."""

    def __init__(self):
        super().__init__()
        self.stem_conv = nn.Conv2d(3, 32, 7, 2, 0)
        self.stem_affine = ChannelAffine(32)
        blocks, channels = [], 32
        for filters, count, downsample in STAGES:
            for i in range(count):
                blocks.append(ResidualBlock(channels, filters, downsample and i == 0))
                channels = filters
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, EMBEDDING_SIZE, bias=False)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_affine(self.stem_conv(chips)))
        x = F.max_pool2d(x, 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


def copy_dlib_weights(model: nn.Module, weights: NetworkWeights) -> nn.Module:
    """Copy a dlib file's convs, affines (and fc) into ``model``, whose module registration order
    must be the file's order (input outwards); returns it in eval mode."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    affines = [m for m in model.modules() if isinstance(m, ChannelAffine)]
    with torch.no_grad():
        for conv, (weight, bias) in zip(convs, weights.convs, strict=True):
            conv.weight.copy_(torch.from_numpy(weight))
            conv.bias.copy_(torch.from_numpy(bias))
        for affine, (gamma, beta) in zip(affines, weights.affines, strict=True):
            affine.gamma.copy_(torch.from_numpy(gamma))
            affine.beta.copy_(torch.from_numpy(beta))
        if weights.fc is not None:
            model.fc.weight.copy_(torch.from_numpy(weights.fc))
    return model.eval()


def module_from_dlib(weights: NetworkWeights) -> DlibFaceResNet:
    """``ModuleFromDlib``: a ready-to-run module (eval mode) holding the file's weights."""
    return copy_dlib_weights(DlibFaceResNet(), weights)
