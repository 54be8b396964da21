"""Scale-invariant log loss (Eigen, Puhrsch & Fergus, NIPS 2014) and its square-root variants.

Eigen et al. train with L = mean(d^2) - lambd * mean(d)^2, d = ln(pred) - ln(target), lambd = 0.5.
BTS, GLPDepth and AdaBins/ZoeDepth train with a square root (and BTS/AdaBins a factor 10) that their
papers do not state; the presets below reproduce their public code. depthlab's default has no root:
d sqrt(x)/dx = 1/(2 sqrt(x)) grows without bound as the loss approaches 0, and at a perfect
prediction autograd computes 0 * inf = NaN. The root form here adds ``eps`` inside the root.
"""

from __future__ import annotations

import torch
from torch import Tensor

from depthlab.errors import ConfigError
from depthlab.losses.base import SQRT_EPS, SupervisedLoss, check_inputs, safe_log, safe_sqrt


def silog(
    pred: Tensor,
    target: Tensor,
    mask: Tensor,
    lambd: float = 0.5,
    *,
    sqrt: bool = False,
    scale: float = 1.0,
    unbiased: bool = False,
    eps: float = SQRT_EPS,
    per_image: bool = False,
) -> Tensor:
    """Scale-invariant log error over the valid pixels of ``mask``.

    With d = ln(pred) - ln(target) (depths in metres, (B, 1, H, W); depths <= 1e-7 m are clamped)::

        x = mean(d^2) - lambd * mean(d)^2          (Eigen et al. 2014, training loss)
        L = scale * sqrt(x + eps)  if sqrt  else  scale * x

    ``lambd = 1`` is fully scale invariant and equals (1 / 2n^2) sum_ij (d_i - d_j)^2; ``lambd = 0``
    is the mean squared log error. x is evaluated as var(d) + (1 - lambd) mean(d)^2, the same number
    without the cancellation that can make a difference of two close means slightly negative.
    ``unbiased`` uses Bessel's variance (n - 1), which is what ``torch.var`` gives AdaBins (0 for a
    single pixel, where torch.var is NaN).

    Pixels are pooled over the whole batch, as BTS, GLPDepth and AdaBins index ``d[mask]``;
    ``per_image`` computes L per image and averages it over the images that have a valid pixel.
    Returns an attached 0 when no pixel is valid.
    """
    pred, target, mask = check_inputs(pred, target, mask)
    d = safe_log(pred) - safe_log(target)
    m = mask.to(d.dtype)
    dims = tuple(range(1, d.ndim)) if per_image else tuple(range(d.ndim))
    n = m.sum(dims, keepdim=True)
    mean_d = (d * m).sum(dims, keepdim=True) / n.clamp_min(1)
    var_d = ((d - mean_d).square() * m).sum(dims, keepdim=True) / (n - 1 if unbiased else n).clamp_min(1)
    x = var_d + (1.0 - lambd) * mean_d.square()
    has_pixels = n > 0
    if sqrt:
        # An empty group has x = 0; take its root at 1 so that eps = 0 cannot produce 0/0 in backward.
        x = safe_sqrt(torch.where(has_pixels, x, torch.ones_like(x)), eps)
    per_group = torch.where(has_pixels, scale * x, torch.zeros_like(x))
    return per_group.sum() / has_pixels.sum().clamp_min(1).to(d.dtype)


class SiLogLoss(SupervisedLoss):
    """Scale-invariant log loss of Eigen et al. 2014: mean(d^2) - lambd mean(d)^2 (no root by default).

    Args:
        lambd: weight of the squared mean, in [0, 1]; 0.5 in Eigen et al. (1: scale invariant,
            0: log-space MSE). Default 0.5.
        variance_focus: BTS's name for ``lambd`` (``--variance_focus 0.85`` in cleinc/bts); give
            one of the two.
        sqrt: take the square root as BTS, GLPDepth and AdaBins do (not in their papers).
        scale: multiply the result (BTS and AdaBins use 10).
        unbiased: Bessel-corrected variance, as AdaBins' ``torch.var``.
        eps: added inside the square root (only with ``sqrt``), so that the gradient stays finite
            (at most 1/(2 sqrt(eps)) per unit of x) as the loss nears 0; the value moves by at most
            sqrt(eps) * scale (1e-4 * scale for the default). ``eps = 0`` gives the published values
            to rounding, with their unbounded gradient near a perfect prediction.
        per_image: one loss per image, averaged over images, instead of pooling the batch.

    See :func:`silog` for the formula.
    """

    def __init__(
        self,
        lambd: float | None = None,
        sqrt: bool = False,
        scale: float = 1.0,
        unbiased: bool = False,
        eps: float = SQRT_EPS,
        per_image: bool = False,
        variance_focus: float | None = None,
    ) -> None:
        super().__init__()
        if lambd is not None and variance_focus is not None:
            raise ConfigError("silog: give lambd or its BTS name variance_focus, not both")
        lambd = variance_focus if variance_focus is not None else (0.5 if lambd is None else lambd)
        if not 0.0 <= lambd <= 1.0:
            raise ConfigError(f"silog: lambd (variance_focus) must lie in [0, 1], got {lambd}")
        if eps < 0:
            raise ConfigError(f"silog: eps must be >= 0, got {eps}")
        self.lambd = float(lambd)
        self.sqrt = sqrt
        self.scale = float(scale)
        self.unbiased = unbiased
        self.eps = float(eps)
        self.per_image = per_image

    def compute(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return silog(
            pred, target, mask, self.lambd,
            sqrt=self.sqrt, scale=self.scale, unbiased=self.unbiased, eps=self.eps, per_image=self.per_image,
        )

    def extra_repr(self) -> str:
        return (f"lambd={self.lambd}, sqrt={self.sqrt}, scale={self.scale}, unbiased={self.unbiased}, "
                f"eps={self.eps}, per_image={self.per_image}")


def silog_bts(variance_focus: float = 0.85, eps: float = SQRT_EPS) -> SiLogLoss:
    """BTS SiLog (Lee et al. 2019): 10 * sqrt(mean(d^2) - 0.85 mean(d)^2), batch pooled.

    Source: ``cleinc/bts pytorch/bts_main.py`` (class ``silog_loss``, ``--variance_focus 0.85``).
    BTS trains on pixels with ground truth > 0.1 m (NYU) or > 1.0 m (KITTI); that threshold is
    ``model.loss_min_depth`` (the mask DepthModule hands every loss), not part of the loss.
    """
    return SiLogLoss(variance_focus=variance_focus, sqrt=True, scale=10.0, eps=eps)


def silog_glpn(lambd: float = 0.5, eps: float = SQRT_EPS) -> SiLogLoss:
    """GLPDepth SiLog (Kim et al. 2022): sqrt(mean(d^2) - 0.5 mean(d)^2), batch pooled.

    Source: ``vinvino02/GLPDepth code/utils/criterion.py`` and the transformers GLPN port (mask
    ground truth > 0). The port's docstring writes the second term as a sum of squares; the code,
    and this preset, use the squared mean.
    """
    return SiLogLoss(lambd=lambd, sqrt=True, scale=1.0, eps=eps)


def silog_adabins(eps: float = SQRT_EPS) -> SiLogLoss:
    """AdaBins/ZoeDepth SiLog: 10 * sqrt(var(d) + 0.15 mean(d)^2), unbiased variance, batch pooled.

    Source: ``shariqfarooq123/AdaBins loss.py`` (``SILogLoss``), same in ``isl-org/ZoeDepth``. This is
    the BTS form with lambd 0.85 up to Bessel's correction. ZoeDepth adds 1e-7 inside the logs,
    AdaBins does not; here the logs take max(depth, 1e-7 m), which equals AdaBins for every depth
    above 1e-7 m.
    """
    return SiLogLoss(lambd=0.85, sqrt=True, scale=10.0, unbiased=True, eps=eps)
