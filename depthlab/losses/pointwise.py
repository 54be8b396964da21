"""Per-pixel losses on the depth residual x = pred - target (metres), averaged over valid pixels.

Each loss is a pure function ``f(pred, target, mask, ...)`` plus a thin :class:`SupervisedLoss` wrapper
(``compute(pred, target, mask)``; the objective calls it with ``out.depth`` and ``batch["depth"]``).
Invalid pixels get a residual of exactly 0 before any non-linearity, so nothing stored there
(and no threshold computed from it) can reach the value or the gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

from depthlab.errors import ConfigError
from depthlab.losses.base import SQRT_EPS, SupervisedLoss, check_inputs, masked_mean, safe_reciprocal, safe_sqrt

BERHU_FRACTION = 0.2  # c = 0.2 * max |x| over the batch (Laina et al. 2016, FCRN)


def _residual(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    pred, target, mask = check_inputs(pred, target, mask)
    return torch.where(mask, pred - target, torch.zeros_like(pred)), mask


# --- elementwise penalties -------------------------------------------------------------------


def smooth_l1_penalty(x: Tensor, sigma: float = 1.0) -> Tensor:
    """0.5 sigma^2 x^2 if |x| < 1/sigma^2, else |x| - 0.5/sigma^2 (Fast/Faster R-CNN, elementwise)."""
    beta = 1.0 / (sigma * sigma)
    a = x.abs()
    return torch.where(a < beta, 0.5 * x.square() / beta, a - 0.5 * beta)


def berhu_penalty(x: Tensor, c: Tensor | float) -> Tensor:
    """Reverse Huber, elementwise: |x| if |x| <= c, else (x^2 + c^2) / (2c). Continuous at |x| = c.

    ``c = 0`` gives |x| wherever x = 0 and x^2 / (2 * tiny) elsewhere, so callers pass c = 0 only when
    every residual is 0 (as :func:`berhu` does, c being a fraction of the largest |x|).
    """
    c = torch.as_tensor(c, dtype=x.dtype, device=x.device)
    a = x.abs()
    c_safe = c.clamp_min(torch.finfo(x.dtype).tiny)  # the quadratic branch is never chosen at c = 0
    return torch.where(a <= c, a, (x.square() + c.square()) / (2.0 * c_safe))


# --- losses (pure functions) ------------------------------------------------------------------


def l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """mean |pred - target| over valid pixels (m)."""
    x, mask = _residual(pred, target, mask)
    return masked_mean(x.abs(), mask)


def l2(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """mean (pred - target)^2 over valid pixels (m^2)."""
    x, mask = _residual(pred, target, mask)
    return masked_mean(x.square(), mask)


def rmse(pred: Tensor, target: Tensor, mask: Tensor, eps: float = SQRT_EPS) -> Tensor:
    """sqrt(mean (pred - target)^2 + eps) over all valid pixels of the batch (m); 0 if none."""
    x, mask = _residual(pred, target, mask)
    value = safe_sqrt(masked_mean(x.square(), mask), eps)
    return torch.where(mask.any(), value, torch.zeros_like(value))


def log_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """mean ln(1 + |pred - target|) over valid pixels (Depth Hints' supervised term)."""
    x, mask = _residual(pred, target, mask)
    return masked_mean(torch.log1p(x.abs()), mask)


def smooth_l1(pred: Tensor, target: Tensor, mask: Tensor, sigma: float = 1.0) -> Tensor:
    """mean of :func:`smooth_l1_penalty` of pred - target over valid pixels."""
    x, mask = _residual(pred, target, mask)
    return masked_mean(smooth_l1_penalty(x, sigma), mask)


def berhu(pred: Tensor, target: Tensor, mask: Tensor, fraction: float = BERHU_FRACTION) -> Tensor:
    """mean of :func:`berhu_penalty` with c = fraction * max |pred - target| over the valid pixels of
    the whole batch (Laina et al. 2016).

    c is a constant in the backward pass, as in the reference implementations: differentiating
    through the max would push the largest residual to grow whenever many residuals exceed c.
    """
    x, mask = _residual(pred, target, mask)
    c = fraction * x.detach().abs().amax() if x.numel() else x.new_zeros(())
    return masked_mean(berhu_penalty(x, c), mask)


def l1_inverse_depth(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """mean |1/pred - 1/target| over valid pixels (1/m); depths are clamped at 1e-7 m first."""
    pred, target, mask = check_inputs(pred, target, mask)
    x = safe_reciprocal(pred) - safe_reciprocal(target)
    return masked_mean(torch.where(mask, x, torch.zeros_like(x)).abs(), mask)


# --- modules ----------------------------------------------------------------------------------


class L1Loss(SupervisedLoss):
    """Mean absolute depth error |pred - target| over valid pixels (m)."""

    def compute(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return l1(pred, target, mask)


class L2Loss(SupervisedLoss):
    """Mean squared depth error (pred - target)^2 over valid pixels (m^2)."""

    def compute(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return l2(pred, target, mask)


class RMSELoss(SupervisedLoss):
    """Root mean squared depth error sqrt(mean (pred - target)^2 + eps), batch pooled (m).

    Args:
        eps: added inside the root so a perfect prediction has a finite gradient (default 1e-8 m^2,
            which moves the value by at most 1e-4 m).
    """

    def __init__(self, eps: float = SQRT_EPS) -> None:
        super().__init__()
        if eps < 0:
            raise ConfigError(f"rmse: eps must be >= 0, got {eps}")
        self.eps = float(eps)

    def compute(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return rmse(pred, target, mask, self.eps)


class LogL1Loss(SupervisedLoss):
    """Log-L1 mean ln(1 + |pred - target|) over valid pixels (Watson et al. 2019, Depth Hints)."""

    def compute(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return log_l1(pred, target, mask)


class SmoothL1Loss(SupervisedLoss):
    """Smooth L1 with sigma: 0.5 sigma^2 x^2 if |x| < 1/sigma^2, else |x| - 0.5/sigma^2.

    x = pred - target (m), averaged over valid pixels. ``sigma = 1`` is the smooth L1 of Fast R-CNN
    (Girshick 2015) and SSD; ``sigma = 3`` is Faster R-CNN's RPN (``smooth_l1_loss`` in
    rbgirshick/py-faster-rcnn). Example: x = 0.4 gives 0.08 with sigma 1 and 0.3444 with sigma 3.

    Args:
        sigma: > 0; the quadratic zone is |x| < 1/sigma^2. Default 1.
    """

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__()
        if sigma <= 0:
            raise ConfigError(f"smooth_l1: sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)

    def compute(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return smooth_l1(pred, target, mask, self.sigma)


class BerHuLoss(SupervisedLoss):
    """Reverse Huber (Laina et al. 2016): |x| if |x| <= c, else (x^2 + c^2)/(2c), c = 0.2 max |x|.

    x = pred - target (m); c is ``fraction`` times the largest |x| over the valid pixels of the
    batch, held constant in the backward pass. When every residual is 0, c = 0 and so is the loss.

    Args:
        fraction: c as a fraction of the largest absolute residual, in (0, 1]. Default 0.2.
    """

    def __init__(self, fraction: float = BERHU_FRACTION) -> None:
        super().__init__()
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(f"berhu: fraction must lie in (0, 1], got {fraction}")
        self.fraction = float(fraction)

    def compute(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return berhu(pred, target, mask, self.fraction)


class L1InverseDepthLoss(SupervisedLoss):
    """L1 on inverse depth: mean |1/pred - 1/target| over valid pixels (1/m), as in self-supervised work."""

    def compute(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return l1_inverse_depth(pred, target, mask)
