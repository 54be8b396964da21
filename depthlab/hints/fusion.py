"""Depth Hints' fused SGM: per pixel, the candidate disparity that best reconstructs the view from the other.

For a view T of a rectified pair and the other view O, every SGM candidate disparity d_k of T
(``depthlab.hints.sgm``) warps O into T (``geometry.warp_horizontal``) and is scored per pixel by the
photometric error of that reconstruction (``geometry.reprojection_error``: 0.85 (1 - SSIM)/2 + 0.15
L1, Monodepth2's). The hint is the candidate with the lowest error, converted to depth with the
pair's calibrated focal length and baseline: z = fx * baseline_m / d. A candidate that has no
disparity at a pixel (<= 0) does not take part there (the published code scored such pixels too and
let their zeros win); a pixel where no candidate has one gets no hint (depth 0).

The right view's hint is the left-view procedure applied to the mirrored pair: mirror both images
and swap them (the mirrored right image is the left image of a rectified pair), fuse, mirror back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import cv2
import numpy as np
import torch

from depthlab.geometry import disparity_to_depth, reprojection_error, warp_horizontal
from depthlab.hints.sgm import PUBLISHED_GRID, SGMSetting, check_pair, sgm_candidates

# Nearest-neighbour with pixel centres at +0.5, as the data pipeline moves depth (transforms.DEPTH_INTERPOLATION).
HINT_INTERPOLATION = cv2.INTER_NEAREST_EXACT


class StereoHints(NamedTuple):
    """Both views' hints: depth (H, W) float32 metres (0 = no hint) and valid (H, W) bool = depth > 0."""

    depth: np.ndarray
    valid: np.ndarray
    depth_right: np.ndarray
    valid_right: np.ndarray


def _as_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1], the range ``reprojection_error``'s SSIM constants assume."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255)


def fuse_disparities(target: np.ndarray, other: np.ndarray, candidates: np.ndarray,
                     source_view: Literal["right", "left"] = "right") -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the candidate disparity of ``target`` with the lowest reprojection error of ``other``.

    Args:
        target: (H, W, 3) uint8, the view the candidates belong to.
        other: (H, W, 3) uint8, the other view of the rectified pair.
        candidates: (K, H, W) target disparities in pixels; <= 0 or not finite = no disparity there.
        source_view: which view ``other`` is (``warp_horizontal``): ``right`` (target is the left
            view, target(x) = other(x - d)) or ``left`` (target is the right view, target(x) = other(x + d)).

    Returns:
        ``(disparity, winner)``: disparity (H, W) float32 pixels, 0 where no candidate has one;
        winner (H, W) int64, the index of the chosen candidate, -1 where none (ties go to the
        lower index).
    """
    check_pair(target, other, "fuse_disparities")
    candidates = np.asarray(candidates, dtype=np.float32)
    if candidates.ndim != 3 or candidates.shape[1:] != target.shape[:2]:
        raise ValueError(f"fuse_disparities: candidates must be (K, H, W) with (H, W) = {target.shape[:2]}, "
                         f"got {candidates.shape}")
    target_t, other_t = _as_tensor(target), _as_tensor(other)
    best_error = torch.full(target.shape[:2], float("inf"))
    winner = torch.full(target.shape[:2], -1, dtype=torch.int64)
    scored: list[np.ndarray] = []
    # One candidate at a time: a (K, 3, H, W) batch through SSIM needs ~K x 70 MB at KITTI size.
    for k, candidate in enumerate(torch.from_numpy(candidates)):
        has_value = torch.isfinite(candidate) & (candidate > 0)
        if not has_value.any():  # e.g. numDisparities >= the width: nothing to score
            continue
        # A copy of an earlier candidate would tie it everywhere, and ties keep the earlier one:
        # skip it (OpenCV matches blockSize 2 as 3, so the published grid holds 4 such copies).
        if any(np.array_equal(candidates[k], earlier, equal_nan=True) for earlier in scored):
            continue
        scored.append(candidates[k])
        disparity = torch.where(has_value, candidate, torch.zeros_like(candidate))[None, None]
        warped, _ = warp_horizontal(other_t, disparity, source_view=source_view)
        error = reprojection_error(warped, target_t)[0, 0]
        # inf where there is no disparity: such a pixel never wins, whatever its warp looks like.
        error = torch.where(has_value, error, torch.full_like(error, float("inf")))
        better = error < best_error
        best_error = torch.where(better, error, best_error)
        winner = torch.where(better, torch.full_like(winner, k), winner)
    chosen = np.take_along_axis(candidates, np.maximum(winner.numpy(), 0)[None], axis=0)[0]
    winner_np = winner.numpy()
    return np.where(winner_np >= 0, chosen, np.float32(0)).astype(np.float32), winner_np


def check_size(size: Sequence[int] | None) -> tuple[int, int] | None:
    """The matching size as (height, width) ints, or None; a one-line ValueError when malformed."""
    if size is None:
        return None
    if len(size) != 2 or any(int(v) != v or v < 8 for v in size):
        raise ValueError(f"hints: size must be (height, width), two integers >= 8, got {size}")
    return int(size[0]), int(size[1])


def fused_disparity(left: np.ndarray, right: np.ndarray, settings: Sequence[SGMSetting] = PUBLISHED_GRID,
                    size: Sequence[int] | None = None) -> np.ndarray:
    """The left image's fused SGM disparity, (H, W) float32 pixels of the input's width, 0 = none.

    ``size`` (height, width): match and fuse at that size instead (faster; the published code used
    320x1024), then scale the disparities by W / width and resize back with nearest neighbour. The
    settings' numDisparities then count pixels of the smaller image.
    """
    check_pair(left, right, "fused_disparity")
    size = check_size(size)
    height, width = left.shape[:2]
    if size is None or size == (height, width):
        return fuse_disparities(left, right, sgm_candidates(left, right, settings))[0]
    small = [cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA) for image in (left, right)]
    disparity = fuse_disparities(small[0], small[1], sgm_candidates(small[0], small[1], settings))[0]
    disparity *= np.float32(width / size[1])  # pixels of the small image -> pixels of the full width
    return cv2.resize(disparity, (width, height), interpolation=HINT_INTERPOLATION)


def _to_depth(disparity_px: np.ndarray, fx: float, baseline_m: float) -> np.ndarray:
    depth = disparity_to_depth(torch.from_numpy(disparity_px)[None, None], float(fx), float(baseline_m))
    return depth[0, 0].numpy()


def _check_camera(fx: float, baseline_m: float, who: str) -> None:
    if not (np.isfinite(fx) and fx > 0 and np.isfinite(baseline_m) and baseline_m > 0):
        raise ValueError(f"{who}: fx (pixels) and baseline_m (metres) must be finite and > 0, got {fx}, {baseline_m}")


def compute_hints(left: np.ndarray, right: np.ndarray, fx: float, baseline_m: float,
                  settings: Sequence[SGMSetting] = PUBLISHED_GRID,
                  size: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Depth Hints of the left image of one rectified pair.

    Args:
        left, right: uint8 (H, W, 3) RGB.
        fx: focal length in pixels of these images; baseline_m: the pair's baseline in metres.
        settings: SGM settings to fuse (default the published 12-setting grid).
        size: optional (height, width) to match at (see :func:`fused_disparity`).

    Returns:
        ``(depth, valid)``: depth (H, W) float32 metres, fx * baseline_m / d, 0 where no candidate
        matched; valid (H, W) bool = depth > 0.
    """
    _check_camera(fx, baseline_m, "compute_hints")
    depth = _to_depth(fused_disparity(left, right, settings, size), fx, baseline_m)
    return depth, depth > 0


def compute_stereo_hints(left: np.ndarray, right: np.ndarray, fx: float, baseline_m: float,
                         settings: Sequence[SGMSetting] = PUBLISHED_GRID,
                         size: Sequence[int] | None = None) -> StereoHints:
    """Depth Hints of both views of one rectified pair (arguments as :func:`compute_hints`).

    The right view's come from the mirrored pair: ``fused_disparity(mirror(right), mirror(left))``
    mirrored back is the right image's disparity (right(x) = left(x + d)).
    """
    _check_camera(fx, baseline_m, "compute_stereo_hints")
    mirror = [np.ascontiguousarray(image[:, ::-1]) for image in (right, left)]  # the mirrored right is a left view
    mirrored = fused_disparity(mirror[0], mirror[1], settings, size)
    depth = _to_depth(fused_disparity(left, right, settings, size), fx, baseline_m)
    depth_right = _to_depth(np.ascontiguousarray(mirrored[:, ::-1]), fx, baseline_m)
    return StereoHints(depth, depth > 0, depth_right, depth_right > 0)
