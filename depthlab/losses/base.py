"""The loss contract and the weighted sum of several losses."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DepthLoss(nn.Module):
    """Base class: ``forward(pred, target, mask, image=None) -> scalar``.

    Subclasses set ``needs_image = True`` when they use the input image. All reduce over valid
    pixels only; with no valid pixel they return a zero that is still attached to ``pred`` (so the
    gradient is exactly zero, never NaN).
    """

    needs_image: bool = False

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor, image: Tensor | None = None) -> Tensor:
        raise NotImplementedError


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over ``mask``; 0 (attached to the graph) when the mask is empty."""
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


class WeightedSum(nn.Module):
    """sum_k w_k L_k. ``forward`` returns the total and each term (unweighted) for logging."""

    def __init__(self, terms: dict[str, tuple[float, nn.Module]]) -> None:
        super().__init__()
        self.weights = {name: w for name, (w, _) in terms.items()}
        self.terms = nn.ModuleDict({name: loss for name, (_, loss) in terms.items()})

    def forward(
        self, pred: Tensor, target: Tensor, mask: Tensor, image: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        parts: dict[str, Tensor] = {}
        total = pred.new_zeros(())
        for name, loss in self.terms.items():
            value = loss(pred, target, mask, image=image) if getattr(loss, "needs_image", False) else loss(pred, target, mask)
            parts[name] = value.detach()
            total = total + self.weights[name] * value
        return total, parts
