"""The embedding networks ``train-embedding`` trains: dlib's ResNet (from dlib's weights or from scratch) and a
compact CNN for training from scratch on a CPU. All take dlib's chips and preprocessing (150x150 RGB,
(x - mean) / 256), so a trained model runs through the same FaceEmbedder as dlib's."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CompactFaceNet(nn.Module):
    """Five conv-BN-ReLU stages (stride 2 each), global average pool, a 128-d linear layer (1.04 M parameters)."""

    def __init__(self, widths=(32, 64, 96, 128, 192), dim: int = 128):
        super().__init__()
        layers, channels = [], 3
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(channels, width, 5 if i == 0 else 3, 2, 2 if i == 0 else 1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                       nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, dim)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(chips).mean(dim=(2, 3)))


class Normalised(nn.Module):
    """An embedding network whose output is L2-normalised (distances then lie in 0..2)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(chips), dim=1)


def dlib_resnet(init: str) -> nn.Module:
    from ..dlib.files import RECOGNITION_MODEL, locate_dlib_model
    from ..dlib.recognition import read_recognition_net
    from ..models.face_embedder import DlibFaceResNet, module_from_dlib

    if init == "dlib":
        return module_from_dlib(read_recognition_net(locate_dlib_model(RECOGNITION_MODEL, None)))
    return DlibFaceResNet()


def compact(init: str) -> nn.Module:
    from facestyle.errors import BadInputError

    if init == "dlib":
        raise BadInputError("--arch compact --init dlib: dlib's weights fit --arch dlib only; use --init scratch")
    return CompactFaceNet()


ARCHS = {"dlib": dlib_resnet, "compact": compact}  # --arch -> (init) -> module
