"""Scale-invariant log loss (Eigen, Puhrsch & Fergus, NIPS 2014) and its square-root variants."""

from __future__ import annotations

import torch
from torch import Tensor

from depthlab.losses.base import DepthLoss

_LOG_EPS = 1e-7  # guard inside the logs (ZoeDepth adds the same 1e-7)


def silog(pred: Tensor, target: Tensor, mask: Tensor, lambd: float = 0.5) -> Tensor:
    """Eigen 2014: L = mean(d^2) - lambd * mean(d)^2, d = ln(pred) - ln(target) over ``mask``.

    ``lambd = 1`` is fully scale invariant and equals (1 / 2n^2) sum_ij (d_i - d_j)^2;
    ``lambd = 0`` is the mean squared log error. Returns an attached zero for an empty mask.
    """
    m = mask.to(pred.dtype)
    n = m.sum().clamp_min(1.0)
    d = (torch.log(pred.clamp_min(_LOG_EPS)) - torch.log(target.clamp_min(_LOG_EPS))) * m
    mean_d = d.sum() / n
    return (d * d).sum() / n - lambd * mean_d * mean_d


class SiLogLoss(DepthLoss):
    """Scale-invariant log loss of Eigen et al. 2014: mean(d^2) - lambd mean(d)^2 (no root)."""

    def __init__(self, lambd: float = 0.5) -> None:
        super().__init__()
        self.lambd = lambd

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor, image: Tensor | None = None) -> Tensor:
        return silog(pred, target, mask, self.lambd)
