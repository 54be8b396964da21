"""Semi-global matching candidates for Depth Hints: OpenCV ``StereoSGBM`` over a set of settings.

One :class:`SGMSetting` is one OpenCV matcher; Depth Hints (Watson et al. 2019) runs a grid of 12
(:data:`PUBLISHED_GRID`) and keeps, per pixel, the candidate that explains the other view best
(``depthlab.hints.fusion``). A candidate is a disparity map of the *left* image of the pair it is
given, in pixels (left(x) = right(x - d)); values <= 0 mean "no match" (OpenCV writes
(minDisparity - 1) = -1 there, and a disparity of 0, a point at infinity, gives no depth either).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

# The published grid and fixed values (nianticlabs/depth-hints precompute_depth_hints.py).
PUBLISHED_BLOCK_SIZES = (1, 2, 3)
PUBLISHED_NUM_DISPARITIES = (64, 96, 128, 160)
SGBM_DISPARITY_SCALE = 16  # StereoSGBM.compute() returns fixed-point disparities with 4 fractional bits (OpenCV docs)

# As in depthlab.data.base: hints are computed in DataLoader workers (synthetic hints_on_the_fly)
# and precompute processes, one per core; a forked worker deadlocks in OpenCV when the parent had
# started OpenCV's thread pool, so the pool is never started. StereoSGBM's default mode gains
# little from threads anyway (2 threads: within 10 % of 1 at 375x1242, measured).
cv2.setNumThreads(1)


@dataclass(frozen=True)
class SGMSetting:
    """The parameters of one ``cv2.StereoSGBM`` matcher; defaults are Depth Hints' fixed values."""

    block_size: int
    num_disparities: int
    pre_filter_cap: int = 63
    p1: int = 36
    p2: int = 288
    min_disparity: int = 0
    uniqueness_ratio: int = 10
    speckle_window_size: int = 100
    speckle_range: int = 16

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"SGMSetting.block_size must be >= 1, got {self.block_size}")
        if self.num_disparities < 16 or self.num_disparities % 16:
            raise ValueError(f"SGMSetting.num_disparities must be a positive multiple of 16 (OpenCV), "
                             f"got {self.num_disparities}")

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SGMSetting:
        return cls(**values)

    def label(self) -> str:
        """Short name for tables: ``bs1 nd64``."""
        return f"bs{self.block_size} nd{self.num_disparities}"

    def matcher(self) -> cv2.StereoSGBM:
        return cv2.StereoSGBM_create(
            minDisparity=self.min_disparity, numDisparities=self.num_disparities, blockSize=self.block_size,
            P1=self.p1, P2=self.p2, preFilterCap=self.pre_filter_cap, uniquenessRatio=self.uniqueness_ratio,
            speckleWindowSize=self.speckle_window_size, speckleRange=self.speckle_range,
        )


#: Depth Hints' 12 settings: blockSize {1, 2, 3} x numDisparities {64, 96, 128, 160}.
PUBLISHED_GRID: tuple[SGMSetting, ...] = tuple(
    SGMSetting(block, count) for block in PUBLISHED_BLOCK_SIZES for count in PUBLISHED_NUM_DISPARITIES
)


def random_settings(count: int, seed: int, block_sizes: Sequence[int] = PUBLISHED_BLOCK_SIZES,
                    num_disparities: Sequence[int] = tuple(range(64, 161, 16))) -> tuple[SGMSetting, ...]:
    """``count`` distinct settings drawn uniformly, without replacement and reproducibly from
    ``seed``, from block_sizes x num_disparities (default: the published block sizes and every
    multiple of 16 from 64 to 160, 21 combinations; the published range, sampled instead of gridded).
    """
    pool = list(itertools.product(block_sizes, num_disparities))
    if not 1 <= count <= len(pool):
        raise ValueError(f"random_settings: count must be in [1, {len(pool)}] (the combinations available), "
                         f"got {count}")
    picks = np.random.default_rng(seed).choice(len(pool), size=count, replace=False)
    return tuple(SGMSetting(*pool[i]) for i in sorted(picks))


def check_pair(left: np.ndarray, right: np.ndarray, who: str) -> None:
    """Raise a one-line ValueError unless ``left`` and ``right`` are uint8 (H, W, 3) images of one shape."""
    for name, image in (("left", left), ("right", right)):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            found = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"{who}: {name} must be a uint8 (H, W, 3) RGB image, got {found}")
    if left.shape != right.shape:
        raise ValueError(f"{who}: left is {left.shape[:2]}, right {right.shape[:2]}: a rectified pair has one size")


def sgm_disparity(left: np.ndarray, right: np.ndarray, setting: SGMSetting) -> np.ndarray:
    """The left image's disparity by one matcher: (H, W) float32 pixels, ``compute() / 16``; <= 0 = none.

    ``left``, ``right``: uint8 (H, W, 3) RGB of a rectified pair. OpenCV refuses an image no wider
    than minDisparity + numDisparities; such a setting can match nothing, so it gives -1 everywhere.
    """
    check_pair(left, right, "sgm_disparity")
    height, width = left.shape[:2]
    if width <= setting.min_disparity + setting.num_disparities:
        return np.full((height, width), -1.0, dtype=np.float32)
    raw = setting.matcher().compute(left, right)
    return raw.astype(np.float32) / SGBM_DISPARITY_SCALE


def matching_key(setting: SGMSetting) -> tuple[int, ...]:
    """What OpenCV's matcher reads of ``setting``: every field, with ``block_size`` replaced by the half
    window ``block_size // 2`` that StereoSGBM uses (opencv calib3d ``stereosgbm.cpp`` derives only
    the half window ``SW2 = SH2 = blockSize / 2`` from it). Two settings with one key give identical
    disparities: the published grid's blockSize 2 matches exactly as 3 (checked at run time by
    :func:`_opencv_halves_block_size`)."""
    values = setting.as_dict()
    values["block_size"] //= 2
    return tuple(values.values())


@functools.cache
def _opencv_halves_block_size() -> bool:
    """Whether this OpenCV matches blockSize 2 exactly as 3, checked once per process on a small
    random pair (a few ms): :func:`sgm_candidates` then matches such settings once. Should a future
    OpenCV use the block size otherwise, every setting is matched on its own, as before."""
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (24, 100, 3), dtype=np.uint8)
    left, right = np.ascontiguousarray(wide[:, :96]), np.ascontiguousarray(wide[:, 4:])
    two, three = (SGMSetting(block, 32).matcher().compute(left, right) for block in (2, 3))
    return bool(np.array_equal(two, three))


def sgm_candidates(left: np.ndarray, right: np.ndarray, settings: Sequence[SGMSetting]) -> np.ndarray:
    """One :func:`sgm_disparity` per setting, stacked: (K, H, W) float32 pixels, <= 0 = none.

    Settings that OpenCV matches identically (one :func:`matching_key`: the published grid's
    blockSize 2 and 3) are matched once and copied, so the grid costs 8 ``compute()`` calls, not 12;
    the stack is the same as matching each (tested).
    """
    if not settings:
        raise ValueError("sgm_candidates: no SGM settings given")
    halves = _opencv_halves_block_size()
    matched: dict[object, np.ndarray] = {}
    stack = []
    for setting in settings:
        token = matching_key(setting) if halves else setting
        if token not in matched:
            matched[token] = sgm_disparity(left, right, setting)
        stack.append(matched[token])
    return np.stack(stack)
