"""The slow method (Gatys et al.): optimise the image G itself by gradient descent on J(G).

Also the quality reference for the fast networks.
"""

from __future__ import annotations

import numpy as np
import torch

from facestyle.train_config import StyleCostWeights  # the content layer and style layers' weights

from .costs import content_cost, gram_matrix, style_cost, total_variation


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image, np.float32).transpose(2, 0, 1)[None].copy())


def optimize_image(
    vgg,
    content: np.ndarray,
    style: np.ndarray,
    steps: int = 300,
    weights: StyleCostWeights | None = None,
    init: str = "content",
    lr: float = 4.0,
    seed: int = 0,
    on_step=None,
) -> tuple[np.ndarray, list[dict]]:
    """Stylise ``content`` (H, W, 3 uint8 RGB) like ``style``; returns (image, per-step cost log)."""
    weights = weights or StyleCostWeights()
    if init not in ("content", "noise"):
        raise ValueError(f"init {init!r}: expected 'content' or 'noise'")
    c, s = _tensor(content), _tensor(style)
    with torch.no_grad():
        target_content = vgg(c)[weights.content_layer]
        style_features = {k: v for k, v in vgg(s).items() if k in weights.style_layers}
    generator = torch.Generator().manual_seed(seed)
    start = c.clone() if init == "content" else torch.rand(c.shape, generator=generator) * 255
    image = start.requires_grad_(True)
    optimiser = torch.optim.Adam([image], lr=lr)
    log = []
    for step in range(steps):
        optimiser.zero_grad()
        features = vgg(image)
        jc = content_cost(target_content, features[weights.content_layer])
        js = style_cost(style_features, features, weights.style_layers)
        tv = total_variation(image)
        total = weights.alpha * jc + weights.beta * js + weights.tv * tv
        total.backward()
        optimiser.step()
        with torch.no_grad():
            image.clamp_(0, 255)
        log.append({"step": step + 1, "total": total.item(), "content": jc.item(), "style": js.item(), "tv": tv.item()})
        if on_step:
            on_step(log[-1])
    return image.detach()[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy(), log


__all__ = ["StyleCostWeights", "optimize_image", "gram_matrix"]
