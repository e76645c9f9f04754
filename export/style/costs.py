"""The neural style cost (Gatys et al.), on feature maps of a loss network such as VGG16.

J(G) = alpha * J_content(C, G) + beta * J_style(S, G) (+ tv_weight * total variation of G), with
    J_content = 1/2 ||a[l](C) - a[l](G)||^2                       at one layer l,
    J_style   = sum_l lambda_l * 1/(2 n_C n_H n_W)^2 ||G[l](S) - G[l](G)||^2   over several layers,
where G[l]_kk' = sum_ij a[l]_ijk a[l]_ijk' is the Gram matrix (channel correlations). Each cost is
summed within an image and averaged over the batch.
"""

from __future__ import annotations

import torch


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C) unnormalised Gram matrices G_kk' = sum over positions of a_k * a_k'."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2)


def content_cost(content: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """1/2 ||a(C) - a(G)||^2 per image, averaged over the batch."""
    return 0.5 * ((content - generated) ** 2).flatten(1).sum(1).mean()


def style_layer_cost(style: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """1/(2 n_C n_H n_W)^2 ||G(S) - G(G)||_F^2 for one layer; ``style`` may hold one image for the batch."""
    _, c, h, w = generated.shape
    diff = gram_matrix(style) - gram_matrix(generated)
    return (diff**2).flatten(1).sum(1).mean() / (2.0 * c * h * w) ** 2


def style_cost(style: dict[str, torch.Tensor], generated: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Weighted sum of :func:`style_layer_cost` over the layers named in ``weights``."""
    missing = sorted(name for name in weights if name not in style or name not in generated)
    if missing:
        raise KeyError(f"style layers {missing} are missing from the features")
    return sum(w * style_layer_cost(style[name], generated[name]) for name, w in weights.items())


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Sum of squared differences between neighbouring pixels, per image, averaged over the batch."""
    dy = (image[:, :, 1:, :] - image[:, :, :-1, :]) ** 2
    dx = (image[:, :, :, 1:] - image[:, :, :, :-1]) ** 2
    return dy.flatten(1).sum(1).mean() + dx.flatten(1).sum(1).mean()
