"""``DepthMetrics``: the streaming torchmetrics form of :func:`depth_errors`."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from depthlab.metrics.functional import METRIC_NAMES, depth_errors


class DepthMetrics(Metric):
    """All depth metrics, computed per image and averaged over images (the standard protocol).

    States are sums (``dist_reduce_fx="sum"``), so memory is constant in the number of images
    and results add up exactly across batches and devices. Images without a valid pixel are
    not averaged in; they are counted in ``skipped``.
    """

    full_state_update = False
    higher_is_better = None

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in METRIC_NAMES:
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("images", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("skipped", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, gt: Tensor, mask: Tensor) -> None:
        errors = depth_errors(pred, gt, mask)
        ok = errors["count"] > 0
        for name in METRIC_NAMES:
            setattr(self, name, getattr(self, name) + errors[name][ok].sum())
        self.images += ok.sum()
        self.skipped += (~ok).sum()

    def compute(self) -> dict[str, Tensor]:
        n = self.images.clamp_min(1)
        out = {name: (getattr(self, name) / n).float() for name in METRIC_NAMES}
        out["skipped"] = self.skipped.float()
        return out
