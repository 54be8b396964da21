"""The hint computation as it was before issue 21's speed-up, kept as the baseline that the package's
faster form must reproduce (tests/hints/test_speed_equivalence.py) and is timed against
(benchmarks/bench_hints.py): every setting matched on its own (12 ``StereoSGBM.compute`` per view)
and every candidate scored with the torch ``geometry.reprojection_error`` (avg_pool2d SSIM).

Not a test module; imported by the tests of this folder and by the benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
import torch

from depthlab.geometry import reprojection_error, warp_horizontal
from depthlab.hints.fusion import (
    HINT_INTERPOLATION, StereoHints, _as_tensor, _check_camera, _to_depth, check_size,
)
from depthlab.hints.sgm import PUBLISHED_GRID, SGMSetting, check_pair, sgm_disparity


def reference_candidates(left: np.ndarray, right: np.ndarray, settings: Sequence[SGMSetting]) -> np.ndarray:
    """(K, H, W): one OpenCV matcher per setting, copies included."""
    return np.stack([sgm_disparity(left, right, setting) for setting in settings])


def reference_fuse(target: np.ndarray, other: np.ndarray, candidates: np.ndarray,
                   source_view: Literal["right", "left"] = "right") -> tuple[np.ndarray, np.ndarray]:
    """``fuse_disparities`` before the speed-up: torch, one ``reprojection_error`` per distinct candidate."""
    check_pair(target, other, "reference_fuse")
    candidates = np.asarray(candidates, dtype=np.float32)
    target_t, other_t = _as_tensor(target), _as_tensor(other)
    best_error = torch.full(target.shape[:2], float("inf"))
    winner = torch.full(target.shape[:2], -1, dtype=torch.int64)
    scored: list[np.ndarray] = []
    for k, candidate in enumerate(torch.from_numpy(candidates)):
        has_value = torch.isfinite(candidate) & (candidate > 0)
        if not has_value.any():
            continue
        if any(np.array_equal(candidates[k], earlier, equal_nan=True) for earlier in scored):
            continue
        scored.append(candidates[k])
        disparity = torch.where(has_value, candidate, torch.zeros_like(candidate))[None, None]
        warped, _ = warp_horizontal(other_t, disparity, source_view=source_view)
        error = reprojection_error(warped, target_t)[0, 0]
        error = torch.where(has_value, error, torch.full_like(error, float("inf")))
        better = error < best_error
        best_error = torch.where(better, error, best_error)
        winner = torch.where(better, torch.full_like(winner, k), winner)
    chosen = np.take_along_axis(candidates, np.maximum(winner.numpy(), 0)[None], axis=0)[0]
    winner_np = winner.numpy()
    return np.where(winner_np >= 0, chosen, np.float32(0)).astype(np.float32), winner_np


def reference_fused_disparity(left: np.ndarray, right: np.ndarray, settings: Sequence[SGMSetting] = PUBLISHED_GRID,
                              size: Sequence[int] | None = None) -> np.ndarray:
    size = check_size(size)
    height, width = left.shape[:2]
    if size is None or size == (height, width):
        return reference_fuse(left, right, reference_candidates(left, right, settings))[0]
    small = [cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA) for image in (left, right)]
    disparity = reference_fuse(small[0], small[1], reference_candidates(small[0], small[1], settings))[0]
    disparity *= np.float32(width / size[1])
    return cv2.resize(disparity, (width, height), interpolation=HINT_INTERPOLATION)


def reference_stereo_hints(left: np.ndarray, right: np.ndarray, fx: float, baseline_m: float,
                           settings: Sequence[SGMSetting] = PUBLISHED_GRID,
                           size: Sequence[int] | None = None) -> StereoHints:
    """``compute_stereo_hints`` before the speed-up (same arguments, same result type)."""
    _check_camera(fx, baseline_m, "reference_stereo_hints")
    mirror = [np.ascontiguousarray(image[:, ::-1]) for image in (right, left)]
    mirrored = reference_fused_disparity(mirror[0], mirror[1], settings, size)
    depth = _to_depth(reference_fused_disparity(left, right, settings, size), fx, baseline_m)
    depth_right = _to_depth(np.ascontiguousarray(mirrored[:, ::-1]), fx, baseline_m)
    return StereoHints(depth, depth > 0, depth_right, depth_right > 0)
