"""The triplet loss and online triplet mining on a PK batch (P identities x K images).

L(A, P, N) = max(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + alpha, 0), and J = the sum over triplets.
Random triplets are mostly satisfied already (d(A,P) + alpha <= d(A,N)), so the triplets are mined
from each batch's embeddings (Schroff et al. 2015; Hermans et al. 2017):

- ``batch-all``: every valid triplet whose loss is positive;
- ``batch-hard``: for each anchor, its farthest positive and its nearest negative;
- ``semi-hard``: for each (anchor, positive), the nearest negative farther than the positive but within
  the margin, d(A,P) < d(A,N) < d(A,P) + alpha (pairs without one are left out).

Miners return index tensors (anchors, positives, negatives); they never see gradients.
"""

from __future__ import annotations

import torch


def pairwise_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, B) Euclidean distances (exactly 0 on the diagonal; gradient-safe at 0)."""
    squared = (embeddings[:, None, :] - embeddings[None, :, :]).pow(2).sum(-1)
    return torch.sqrt(squared.clamp_min(1e-12)) * (squared > 0)


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, alpha: float,
                 reduction: str = "sum") -> torch.Tensor:
    """The triplet loss of (N, D) rows; ``reduction``: ``sum`` (J as defined) or ``mean`` over the triplets."""
    losses = ((anchor - positive).pow(2).sum(1) - (anchor - negative).pow(2).sum(1) + alpha).clamp_min(0)
    if reduction == "sum":
        return losses.sum()
    return losses.mean() if len(losses) else losses.sum()


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels[:, None] == labels[None, :]
    positives = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return positives, ~same


def mine_batch_all(distances: torch.Tensor, labels: torch.Tensor, alpha: float):
    positives, negatives = _masks(labels)
    d2 = distances.pow(2)
    valid = positives[:, :, None] & negatives[:, None, :]
    active = valid & (d2[:, :, None] - d2[:, None, :] + alpha > 0)
    return active.nonzero(as_tuple=True)


def mine_batch_hard(distances: torch.Tensor, labels: torch.Tensor, alpha: float):
    positives, negatives = _masks(labels)
    anchors = (positives.any(1) & negatives.any(1)).nonzero(as_tuple=True)[0]
    far = distances.masked_fill(~positives, -1.0).argmax(1)
    near = distances.masked_fill(~negatives, float("inf")).argmin(1)
    return anchors, far[anchors], near[anchors]


def mine_semi_hard(distances: torch.Tensor, labels: torch.Tensor, alpha: float):
    positives, negatives = _masks(labels)
    a, p = positives.nonzero(as_tuple=True)
    dap = distances[a, p][:, None]
    dan = distances[a]
    window = negatives[a] & (dan > dap) & (dan < dap + alpha)
    nearest = dan.masked_fill(~window, float("inf")).argmin(1)
    keep = window.any(1)
    return a[keep], p[keep], nearest[keep]


MINERS = {"batch-all": mine_batch_all, "batch-hard": mine_batch_hard, "semi-hard": mine_semi_hard}


def mined_loss(embeddings: torch.Tensor, labels: torch.Tensor, mining: str, alpha: float) -> tuple[torch.Tensor, int]:
    """(mean triplet loss over the mined triplets, how many were mined) for one batch."""
    with torch.no_grad():
        a, p, n = MINERS[mining](pairwise_distances(embeddings), labels, alpha)
    return triplet_loss(embeddings[a], embeddings[p], embeddings[n], alpha, reduction="mean"), len(a)
