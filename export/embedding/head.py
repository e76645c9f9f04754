"""The learned similarity head: P(same | a, b) = sigmoid(sum_k w_k phi_k(a, b) + b), with
phi = |a_k - b_k| (the seed's form) or the chi-square form (a_k - b_k)^2 / (|a_k| + |b_k|) (the
absolute values keep it defined for embeddings with negative entries). Fitted by logistic regression on
pairs, exported as its own small ONNX beside the embedding, described in the embedding's manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..spec import ModelSpec, TensorSpec

FORMS = ("abs", "chi2")
HEAD_SPEC = ModelSpec(
    name="face-verify-head",
    inputs=(TensorSpec("a", ("batch", 128)), TensorSpec("b", ("batch", 128))),
    outputs=(TensorSpec("probability", ("batch",)),),
    opset=18, atol=1e-5, rtol=0.0,
)


class SimilarityHead(nn.Module):
    def __init__(self, dim: int = 128, form: str = "abs"):
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"head form {form!r}: expected one of {FORMS}")
        self.form = form
        self.weight = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(()))

    def features(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.form == "abs":
            return (a - b).abs()
        return (a - b).pow(2) / (a.abs() + b.abs() + 1e-6)

    def logits(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.features(a, b) @ self.weight + self.bias

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(a, b))


def fit_head(a: np.ndarray, b: np.ndarray, same: np.ndarray, form: str = "abs", steps: int = 600,
             l2: float = 1e-4, seed: int = 0) -> SimilarityHead:
    """Logistic regression of ``same`` on phi(a, b), full batch, Adam; returns the head in eval mode."""
    torch.manual_seed(seed)
    head = SimilarityHead(a.shape[1], form)
    xa, xb = torch.from_numpy(np.asarray(a, np.float32)), torch.from_numpy(np.asarray(b, np.float32))
    y = torch.from_numpy(np.asarray(same, np.float32))
    optimiser = torch.optim.Adam(head.parameters(), lr=0.05)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(steps):
        optimiser.zero_grad()
        loss = loss_fn(head.logits(xa, xb), y) + l2 * head.weight.pow(2).sum()
        loss.backward()
        optimiser.step()
    return head.eval()


def head_probabilities(head: SimilarityHead, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return head(torch.from_numpy(np.asarray(a, np.float32)), torch.from_numpy(np.asarray(b, np.float32))).numpy()


def export_head(head: SimilarityHead, a: np.ndarray, b: np.ndarray, path: Path) -> dict:
    """ONNX through the one export path, validated against torch on real pairs; returns its parity report."""
    from ..onnx_export import onnx_from_module
    from ..validate import validate_onnx

    a, b = np.asarray(a[:16], np.float32), np.asarray(b[:16], np.float32)
    metadata = {"facestyle.model": HEAD_SPEC.name, "facestyle.head_form": head.form}
    onnx_from_module(head, HEAD_SPEC, (torch.from_numpy(a[:3]), torch.from_numpy(b[:3])), path, metadata)
    report = validate_onnx(path, head, HEAD_SPEC, [{"a": a[:1], "b": b[:1]}, {"a": a, "b": b}])
    return report.to_json()
