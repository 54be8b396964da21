"""Depth Hints (Watson et al., ICCV 2019): fused SGM stereo depth as proxy labels.

- :mod:`~depthlab.hints.sgm`: OpenCV StereoSGBM settings, the published 12-setting grid.
- :mod:`~depthlab.hints.fusion`: :func:`compute_hints` / :func:`compute_stereo_hints` for one pair.
- :mod:`~depthlab.hints.quality`: :func:`hint_quality`, coverage and accuracy per setting and fused.
- :mod:`~depthlab.hints.store`: hint files and the hints folder's ``manifest.json``.
- :mod:`~depthlab.hints.precompute`: ``depthlab hints precompute`` (every pair of a data module).

Guide: ``docs/hints.md``.
"""

from depthlab.hints.fusion import StereoHints, compute_hints, compute_stereo_hints, fuse_disparities, fused_disparity
from depthlab.hints.quality import HintQuality, format_quality_table, hint_quality
from depthlab.hints.sgm import PUBLISHED_GRID, SGMSetting, random_settings, sgm_candidates, sgm_disparity

__all__ = [
    "PUBLISHED_GRID", "HintQuality", "SGMSetting", "StereoHints", "compute_hints", "compute_stereo_hints",
    "format_quality_table", "fuse_disparities", "fused_disparity", "hint_quality", "random_settings",
    "sgm_candidates", "sgm_disparity",
]
