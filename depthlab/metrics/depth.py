"""``DepthMetrics`` and ``ScaleRatios``: the streaming torchmetrics forms of :mod:`.functional`."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from depthlab.metrics.functional import (
    DEFAULT_MIN_DEPTH_M,
    METRIC_NAMES,
    SUM_NAMES,
    Averaging,
    depth_metrics_compute,
    depth_metrics_update,
    nonfinite_update,
    summarize_ratios,
)


class DepthMetrics(Metric):
    """The nine depth metrics over a data set streamed batch by batch (see :mod:`.functional`).

    Args:
        min_depth, max_depth: evaluation caps in metres; ground truth counts only strictly inside
            them and predictions are clamped to them (``max_depth`` None: no upper cap).
        averaging: ``"image"`` (default, the standard: per-image metrics averaged over images) or
            ``"pixel"`` (all valid pixels of the data set pooled, as FCRN's MATLAB code).

    States are sums with ``dist_reduce_fx="sum"`` (memory is constant in the number of images,
    results add up across batches and devices); both averagings are accumulated, ``averaging``
    picks what :meth:`compute` reports. Images without a valid pixel are not averaged in; they are
    counted in ``skipped``. ``compute`` returns the metrics plus ``images`` and ``skipped``.
    """

    full_state_update = False
    higher_is_better = None
    is_differentiable = False

    def __init__(
        self,
        min_depth: float = DEFAULT_MIN_DEPTH_M,
        max_depth: float | None = None,
        averaging: Averaging = "image",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if averaging not in ("image", "pixel"):
            raise ValueError(f"averaging must be 'image' or 'pixel', got {averaging!r}")
        self.min_depth, self.max_depth, self.averaging = min_depth, max_depth, averaging
        f64 = torch.float64
        self.add_state("image_sum", default=torch.zeros(len(METRIC_NAMES), dtype=f64), dist_reduce_fx="sum")
        self.add_state("images", default=torch.tensor(0.0, dtype=f64), dist_reduce_fx="sum")
        self.add_state("skipped", default=torch.tensor(0.0, dtype=f64), dist_reduce_fx="sum")
        self.add_state("pixel_sum", default=torch.zeros(len(SUM_NAMES), dtype=f64), dist_reduce_fx="sum")
        self.add_state("pixels", default=torch.tensor(0.0, dtype=f64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, gt: Tensor, mask: Tensor | None = None) -> None:
        """``pred``, ``gt``: (B, 1, H, W) metres of the same size; ``mask``: optional bool, same shape."""
        increments = depth_metrics_update(pred, gt, mask, self.min_depth, self.max_depth)
        for name, value in increments.items():
            setattr(self, name, getattr(self, name) + value)

    def compute(self) -> dict[str, Tensor]:
        return depth_metrics_compute(
            self.image_sum, self.images, self.pixel_sum, self.pixels, self.skipped, averaging=self.averaging
        )


class ScaleRatios(Metric):
    """Per-image median-scaling ratios median(g) / median(p), summarised as monodepth2 prints them.

    ``compute`` returns ``ratio_median`` and ``ratio_std`` (std of ratios / median). Keeps one float
    per image (a ``cat`` state, gathered across devices).
    """

    full_state_update = False
    higher_is_better = None
    is_differentiable = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("ratios", default=[], dist_reduce_fx="cat")

    def update(self, ratios: Tensor) -> None:
        # Appended even when empty: every rank must hold a tensor for the gather at sync time.
        self.ratios.append(ratios.detach().double().flatten())

    def compute(self) -> dict[str, Tensor]:
        ratios = dim_zero_cat(self.ratios) if len(self.ratios) else torch.zeros(0, dtype=torch.float64)
        return summarize_ratios(ratios)


class NonFiniteCount(Metric):
    """Non-finite predicted values streamed over a data set (see :func:`.functional.nonfinite_update`).

    ``compute`` returns ``nonfinite_pixels`` and ``nonfinite_images`` (float64 sums, summed across
    devices).
    """

    full_state_update = False
    higher_is_better = None
    is_differentiable = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("nonfinite_pixels", "nonfinite_images"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor) -> None:
        """``pred``: (B, 1, H, W) depth as the network predicted it (before any clamp)."""
        for name, value in nonfinite_update(pred.detach()).items():
            setattr(self, name, getattr(self, name) + value)

    def compute(self) -> dict[str, Tensor]:
        return {"nonfinite_pixels": self.nonfinite_pixels, "nonfinite_images": self.nonfinite_images}
