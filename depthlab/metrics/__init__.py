"""Depth metrics: :mod:`depthlab.metrics.functional` holds the math, :class:`DepthMetrics` streams it."""

from depthlab.metrics.depth import DepthMetrics, NonFiniteCount, ScaleRatios
from depthlab.metrics.functional import (
    METRIC_NAMES,
    clamp_prediction,
    depth_errors,
    depth_metrics,
    nonfinite_update,
    summarize_ratios,
    valid_depth_mask,
)

__all__ = [
    "DepthMetrics",
    "METRIC_NAMES",
    "NonFiniteCount",
    "ScaleRatios",
    "clamp_prediction",
    "depth_errors",
    "depth_metrics",
    "nonfinite_update",
    "summarize_ratios",
    "valid_depth_mask",
]
