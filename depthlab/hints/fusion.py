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

from depthlab.geometry import (
    REPROJECTION_ALPHA, SSIM_C1, SSIM_C2, disparity_to_depth, warp_horizontal,
)
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


# avg_pool2d's CPU kernel sums a 3x3 window row by row, left to right, then divides by 9; the
# same order in NumPy gives the same float32 bits (tested against geometry.ssim).
_WINDOW = tuple((row, col) for row in range(3) for col in range(3))


def _box_mean3(padded: np.ndarray, out: np.ndarray) -> np.ndarray:
    """3x3 means of a (C, H + 2, W + 2) array into ``out`` (C, H, W), bit-identical to ``avg_pool2d(x, 3, 1)``."""
    height, width = out.shape[-2:]
    (r0, c0), (r1, c1) = _WINDOW[:2]
    np.add(padded[:, r0:r0 + height, c0:c0 + width], padded[:, r1:r1 + height, c1:c1 + width], out=out)
    for row, col in _WINDOW[2:]:
        out += padded[:, row:row + height, col:col + width]
    out /= np.float32(9)
    return out


def _pad1(image: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``image`` (C, H, W) padded by one pixel into ``out`` (C, H + 2, W + 2) as ``geometry.ssim`` pads:
    reflection (the edge not repeated), or replication when a side is 1 pixel."""
    height, width = image.shape[-2:]
    edge = 1 if min(height, width) > 1 else 0
    out[:, 1:height + 1, 1:width + 1] = image
    out[:, 0] = out[:, 1 + edge]
    out[:, height + 1] = out[:, height - edge]
    out[:, :, 0] = out[:, :, 1 + edge]
    out[:, :, width + 1] = out[:, :, width - edge]
    return out


def _channel_mean(values: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Mean over the first axis of (C, ...) into ``out``: summed in channel order, then divided by C,
    as torch's ``mean(1)`` does on CPU (bit-identical, tested)."""
    np.copyto(out, values[0])
    for channel in values[1:]:
        out += channel
    out /= np.float32(len(values))
    return out


def _error_from_moments(mu: np.ndarray, mean_xx: np.ndarray, mean_xy: np.ndarray, work: np.ndarray,
                        target_terms: tuple[np.ndarray, np.ndarray, np.ndarray], warped: np.ndarray,
                        target: np.ndarray, structure: np.ndarray, l1: np.ndarray) -> np.ndarray:
    """``reprojection_error`` from the 3x3 means of x, x x and x y (x = warped, y = target), each
    (C, ...) and overwritten, as ``geometry.ssim`` and ``reprojection_error`` combine them: the same
    float32 operations in the same order (2 mu_x mu_y as 2 (mu_x mu_y), exact in binary). Returns
    ``structure`` (...) holding the error."""
    mu_y, mu_y2, sigma_y = target_terms
    c1, c2, two = np.float32(SSIM_C1), np.float32(SSIM_C2), np.float32(2)
    np.multiply(mu, mu, out=work)
    mean_xx -= work  # sigma_x
    # denominator (mu_x^2 + mu_y^2 + C1)(sigma_x + sigma_y + C2), into work
    work += mu_y2
    work += c1
    mean_xx += sigma_y
    mean_xx += c2
    work *= mean_xx
    # numerator (2 mu_x mu_y + C1)(2 sigma_xy + C2), into mu
    np.multiply(mu, mu_y, out=mu)
    mean_xy -= mu  # sigma_xy
    mu *= two
    mu += c1
    mean_xy *= two
    mean_xy += c2
    mu *= mean_xy
    np.divide(mu, work, out=mu)  # SSIM
    # clamp((1 - SSIM) / 2, 0, 1) and |x - y|, each averaged over the channels
    np.subtract(np.float32(1), mu, out=mu)
    mu /= two
    np.clip(mu, np.float32(0), np.float32(1), out=mu)
    _channel_mean(mu, structure)
    np.subtract(warped, target, out=work)
    np.abs(work, out=work)
    _channel_mean(work, l1)
    structure *= np.float32(REPROJECTION_ALPHA)
    l1 *= np.float32(1 - REPROJECTION_ALPHA)
    structure += l1
    return structure


class _ReprojectionScorer:
    """``geometry.reprojection_error(warped, target)`` (alpha 0.85) of many warps of one target view,
    in NumPy float32, with the target's SSIM terms (its padded copy, 3x3 mean and variance)
    computed once instead of once per candidate; at every pixel (:meth:`error`, on reused buffers)
    or at chosen pixels only (:meth:`error_at`).

    Every step is the torch form's operation on the same float32 values in the same order (the
    3x3 means by :func:`_box_mean3` or the same sum over gathered windows; the rest by
    :func:`_error_from_moments`), so the errors are the same bits (tested), and so are the fused
    hints: a near tie between two candidates is decided as before. At 375x1242 on one thread
    :meth:`error` took 25 ms of CPU against ``reprojection_error``'s 100 ms (measured), mostly
    because avg_pool2d's kernel loops over each output's window and the target's terms are shared.
    """

    def __init__(self, target: np.ndarray) -> None:
        channels, height, width = target.shape
        self.target = target
        full, padded = (channels, height, width), (channels, height + 2, width + 2)
        self.target_padded = _pad1(target, np.empty(padded, np.float32))
        mu = _box_mean3(self.target_padded, np.empty(full, np.float32))
        mu2 = mu * mu
        sigma = _box_mean3(np.multiply(self.target_padded, self.target_padded), np.empty(full, np.float32))
        sigma -= mu2
        self.target_terms = (mu, mu2, sigma)
        self._padded = np.empty(padded, np.float32)
        self._product = np.empty(padded, np.float32)
        self._moments = tuple(np.empty(full, np.float32) for _ in range(4))
        self._l1 = np.empty((height, width), np.float32)
        self._error = np.empty((height, width), np.float32)
        # flat offsets of a pixel's 3x3 window (in _WINDOW's order) and of each channel in the padded arrays
        self._window_offsets = np.array([row * (width + 2) + col for row, col in _WINDOW])[:, None, None]
        self._channel_offsets = np.arange(channels)[:, None] * (height + 2) * (width + 2)

    def error(self, warped: np.ndarray) -> np.ndarray:
        """(H, W) float32 error of ``warped`` (C, H, W); the array is reused by the next call."""
        x = _pad1(warped, self._padded)
        mu, mean_xx, mean_xy, work = self._moments
        _box_mean3(x, mu)
        _box_mean3(np.multiply(x, x, out=self._product), mean_xx)
        _box_mean3(np.multiply(x, self.target_padded, out=self._product), mean_xy)
        return _error_from_moments(mu, mean_xx, mean_xy, work, self.target_terms, warped, self.target,
                                   self._error, self._l1)

    def error_at(self, warped: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(N,) float32 errors of ``warped`` (C, H, W) at the pixels (rows, cols): the values
        :meth:`error` has there, from each pixel's gathered 3x3 window."""
        x = _pad1(warped, self._padded).ravel()
        flat = rows * self._padded.shape[-1] + cols
        windows = flat[None, None] + self._channel_offsets[None] + self._window_offsets  # (9, C, N)
        x_windows, y_windows = x[windows], self.target_padded.ravel()[windows]
        moments = []
        for values in (x_windows, x_windows * x_windows, x_windows * y_windows):
            total = values[0] + values[1]
            for term in values[2:]:
                total += term
            total /= np.float32(9)
            moments.append(total)
        at = (slice(None), rows, cols)
        target_terms = tuple(term[at] for term in self.target_terms)
        return _error_from_moments(*moments, np.empty_like(moments[0]), target_terms, warped[at], self.target[at],
                                   np.empty(len(rows), np.float32), np.empty(len(rows), np.float32))


def _same_candidate(candidate: np.ndarray, earlier: np.ndarray) -> bool:
    """``np.array_equal(..., equal_nan=True)``, after a look at every 7th pixel that settles most
    pairs of real candidates (they differ nearly everywhere) at 1/49 of the cost."""
    return (np.array_equal(candidate[::7, ::7], earlier[::7, ::7], equal_nan=True)
            and np.array_equal(candidate, earlier, equal_nan=True))


# Below this fraction of a view's pixels, a candidate is scored at those pixels only (gathered
# windows); above it at every pixel. At 375x1242 on one thread scoring every pixel took 27 ms of
# CPU and the gathered form about 2.3 ms per 1 % of the pixels (measured): they meet near 12 %.
SPARSE_FRACTION = 0.1


def _settled(disparity: np.ndarray, earlier: list[np.ndarray]) -> np.ndarray:
    """(H, W) bool: where ``disparity`` equals one earlier candidate's on the pixel's whole 3x3
    window. The warp of a pixel reads only its own disparity and the SSIM window only the 3x3
    around it, so there the candidate's error is the earlier one's, bit for bit: it ties at
    best and ties keep the earlier candidate. Such pixels need no scoring."""
    settled = np.zeros(disparity.shape, dtype=bool)
    kernel = np.ones((3, 3), np.uint8)
    for other in earlier:
        same = np.equal(disparity, other).view(np.uint8)
        settled |= cv2.erode(same, kernel).view(bool)  # pixels outside the image do not count (erode's default)
    return settled


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

    The error of each candidate is ``geometry.reprojection_error`` of ``other`` warped by it
    (``geometry.warp_horizontal``), computed by :class:`_ReprojectionScorer` to the same bits, and
    only where the candidate could win: not where an earlier candidate had the same disparities on
    the pixel's 3x3 window (:func:`_settled`; SGM settings that differ in numDisparities only agree
    on about 99 % of a KITTI frame's pixels).
    """
    check_pair(target, other, "fuse_disparities")
    candidates = np.asarray(candidates, dtype=np.float32)
    if candidates.ndim != 3 or candidates.shape[1:] != target.shape[:2]:
        raise ValueError(f"fuse_disparities: candidates must be (K, H, W) with (H, W) = {target.shape[:2]}, "
                         f"got {candidates.shape}")
    target_t, other_t = _as_tensor(target), _as_tensor(other)
    scorer = _ReprojectionScorer(target_t[0].numpy())
    best_error = np.full(target.shape[:2], np.inf, dtype=np.float32)
    winner = np.full(target.shape[:2], -1, dtype=np.int64)
    better = np.empty(target.shape[:2], dtype=bool)
    scored: list[np.ndarray] = []
    disparities: list[np.ndarray] = []  # of the scored candidates, 0 where they have none
    # One candidate at a time: a (K, 3, H, W) batch would need ~K x 70 MB at KITTI size.
    for k, candidate in enumerate(candidates):
        has_value = np.isfinite(candidate) & (candidate > 0)
        if not has_value.any():  # e.g. numDisparities >= the width: nothing to score
            continue
        # A copy of an earlier candidate would tie it everywhere, and ties keep the earlier one:
        # skip it (sgm_candidates already copies blockSize 3's from 2's without matching twice).
        if any(_same_candidate(candidate, earlier) for earlier in scored):
            continue
        scored.append(candidate)
        disparity = np.where(has_value, candidate, np.float32(0))
        todo = has_value & ~_settled(disparity, disparities)
        disparities.append(disparity)
        count = np.count_nonzero(todo)
        if not count:
            continue
        warped, _ = warp_horizontal(other_t, torch.from_numpy(disparity)[None, None], source_view=source_view)
        warped = warped[0].numpy()
        if count > SPARSE_FRACTION * todo.size:
            error = scorer.error(warped)
            # inf where there is no disparity: such a pixel never wins, whatever its warp looks like.
            np.copyto(error, np.float32(np.inf), where=~has_value)
            np.less(error, best_error, out=better)
            np.copyto(best_error, error, where=better)
            winner[better] = k
        else:
            rows, cols = np.nonzero(todo)
            error = scorer.error_at(warped, rows, cols)
            wins = error < best_error[rows, cols]
            rows, cols = rows[wins], cols[wins]
            best_error[rows, cols] = error[wins]
            winner[rows, cols] = k
    chosen = np.take_along_axis(candidates, np.maximum(winner, 0)[None], axis=0)[0]
    return np.where(winner >= 0, chosen, np.float32(0)).astype(np.float32), winner


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
