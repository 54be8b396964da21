"""Depth metrics: :mod:`depthlab.metrics.functional` holds the math, :class:`DepthMetrics` streams it."""

from depthlab.metrics.depth import DepthMetrics
from depthlab.metrics.functional import METRIC_NAMES, depth_errors

__all__ = ["DepthMetrics", "METRIC_NAMES", "depth_errors"]
