"""The loss contract, the guards every loss shares, and the weighted sum of several losses."""

from __future__ import annotations

import torch
from torch import Tensor, nn

LOG_EPS = 1e-7  # smallest depth (m) that enters a log or a reciprocal; ZoeDepth adds the same 1e-7
SQRT_EPS = 1e-8  # added inside square roots: caps d sqrt(x)/dx = 1/(2 sqrt(x)) at 5e3 as x -> 0


class DepthLoss(nn.Module):
    """Base class: ``forward(pred, target, mask, image=None) -> scalar``.

    ``pred`` and ``target`` are depth maps (B, 1, H, W) in metres, ``mask`` (B, 1, H, W) marks the
    valid pixels (bool). Subclasses set ``needs_image = True`` when they use the input image
    (B, 3, H, W, RGB in [0, 1]). All reduce over valid pixels only; with no valid pixel they return a
    zero that is still attached to ``pred`` (so the gradient is exactly zero, never NaN).
    """

    needs_image: bool = False

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor, image: Tensor | None = None) -> Tensor:
        raise NotImplementedError


def check_inputs(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Validate shapes; return ``(pred, target, mask)`` with a bool mask and a finite target.

    Target values at invalid pixels are replaced by 1 so that whatever a data set stores there (0,
    NaN, inf) can never reach a value or a gradient: ``0 * NaN`` is NaN, masking after the fact is
    not enough. Half-precision inputs (mixed-precision training) are computed in float32: the
    guards' epsilons and the variances of log depths need its range and precision.
    """
    if pred.shape != target.shape or pred.shape != mask.shape:
        raise ValueError(
            f"loss inputs must have one shape (B, 1, H, W); got pred {tuple(pred.shape)}, "
            f"target {tuple(target.shape)}, mask {tuple(mask.shape)}"
        )
    mask = mask.bool()
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    pred, target = pred.to(dtype), target.to(dtype)
    target = torch.where(mask, target, torch.ones_like(target))
    return pred, target, mask


def safe_log(depth: Tensor) -> Tensor:
    """ln(max(depth, LOG_EPS)): zero or negative depths give a finite value and a zero gradient."""
    return torch.log(depth.clamp_min(LOG_EPS))


def safe_reciprocal(depth: Tensor) -> Tensor:
    """1 / max(depth, LOG_EPS): disparity of a depth in metres, finite for zero or negative depths."""
    return 1.0 / depth.clamp_min(LOG_EPS)


def safe_sqrt(x: Tensor, eps: float = SQRT_EPS) -> Tensor:
    """sqrt(max(x, 0) + eps): finite value and gradient at x = 0 (and for round-off below 0)."""
    return torch.sqrt(x.clamp_min(0.0) + eps)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over ``mask``; 0 (attached to the graph) when the mask is empty.

    Invalid entries are selected away with ``torch.where`` rather than multiplied by 0, so an inf
    there cannot turn the result into NaN.
    """
    mask = mask.bool()
    total = torch.where(mask, x, torch.zeros_like(x)).sum()
    return total / mask.sum().clamp_min(1).to(x.dtype)


class WeightedSum(nn.Module):
    """sum_k w_k L_k. ``forward`` returns the total and each term (unweighted) for logging."""

    def __init__(self, terms: dict[str, tuple[float, nn.Module]]) -> None:
        super().__init__()
        self.weights = {name: w for name, (w, _) in terms.items()}
        self.terms = nn.ModuleDict({name: loss for name, (_, loss) in terms.items()})

    @property
    def needs_image(self) -> bool:
        return any(getattr(loss, "needs_image", False) for loss in self.terms.values())

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
