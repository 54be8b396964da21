"""How good are the hints: coverage and accuracy of every single SGM setting and of their fusion.

Depth Hints' claim is that fusing several SGM settings beats any one of them; :func:`hint_quality`
measures it on pairs with ground truth (the synthetic scenes have dense ground truth).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from depthlab.hints.fusion import _check_camera, _to_depth, fuse_disparities
from depthlab.hints.sgm import PUBLISHED_GRID, SGMSetting, check_pair, sgm_candidates

ACCURATE_WITHIN = 0.05  # |h - g| / g below this counts as accurate (the 5 % criterion)

#: One evaluation pair: left and right uint8 (H, W, 3), fx (pixels), baseline_m (metres), and the
#: left view's ground-truth depth (H, W) metres (0 = none).
QualityPair = tuple[np.ndarray, np.ndarray, float, float, np.ndarray]


@dataclass(frozen=True)
class HintQuality:
    """One row of :func:`hint_quality`, pooled over every ground-truth pixel of every pair.

    ``coverage``: fraction of ground-truth pixels that have a hint. ``abs_rel``: mean |h - g| / g
    over the covered ones (NaN when none is). ``accurate``: fraction of *all* ground-truth pixels
    whose hint is within ``tolerance`` of g, |h - g| / g < tolerance (coverage and accuracy at once).
    """

    name: str
    coverage: float
    abs_rel: float
    accurate: float
    gt_pixels: int
    tolerance: float = ACCURATE_WITHIN


class _Tally:
    def __init__(self) -> None:
        self.gt = self.covered = self.accurate = 0
        self.abs_rel_sum = 0.0

    def add(self, hint: np.ndarray, gt: np.ndarray, tolerance: float) -> None:
        has_gt = gt > 0
        covered = has_gt & (hint > 0)
        rel = np.abs(hint[covered].astype(np.float64) - gt[covered]) / gt[covered]
        self.gt += int(has_gt.sum())
        self.covered += int(covered.sum())
        self.abs_rel_sum += float(rel.sum())
        self.accurate += int((rel < tolerance).sum())

    def row(self, name: str, tolerance: float) -> HintQuality:
        gt = max(self.gt, 1)
        abs_rel = self.abs_rel_sum / self.covered if self.covered else float("nan")
        return HintQuality(name, self.covered / gt, abs_rel, self.accurate / gt, self.gt, tolerance)


def hint_quality(pairs: Iterable[QualityPair], settings: Sequence[SGMSetting] = PUBLISHED_GRID,
                 tolerance: float = ACCURATE_WITHIN) -> list[HintQuality]:
    """Coverage, abs_rel and accurate fraction (see :class:`HintQuality`) of the left view's hints
    of each single setting (rows in ``settings`` order, named ``bs1 nd64`` ...) and of the fused
    hints (last row, ``fused``), at the images' own size. Each pair is matched once; the fused row
    uses those same candidates."""
    tallies = [_Tally() for _ in range(len(settings) + 1)]
    for number, (left, right, fx, baseline_m, gt) in enumerate(pairs):
        check_pair(left, right, "hint_quality")
        _check_camera(fx, baseline_m, "hint_quality")
        gt = np.asarray(gt, dtype=np.float32)
        if gt.shape != left.shape[:2]:
            raise ValueError(f"hint_quality: pair {number}: ground truth is {gt.shape}, the images {left.shape[:2]}")
        candidates = sgm_candidates(left, right, settings)
        fused, _ = fuse_disparities(left, right, candidates)
        for tally, disparity in zip(tallies, [*candidates, fused]):
            tally.add(_to_depth(disparity, fx, baseline_m), gt, tolerance)
    names = [setting.label() for setting in settings] + ["fused"]
    return [tally.row(name, tolerance) for tally, name in zip(tallies, names)]


def format_quality_table(rows: Sequence[HintQuality]) -> str:
    """A Markdown table of :func:`hint_quality`'s rows."""
    within = f"{100 * rows[0].tolerance:g} %" if rows else ""
    lines = [f"| hints | coverage | abs_rel (covered) | within {within} (of all gt) |", "|---|---|---|---|"]
    lines += [f"| {r.name} | {r.coverage:.3f} | {r.abs_rel:.4f} | {r.accurate:.3f} |" for r in rows]
    return "\n".join(lines)
