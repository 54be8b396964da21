"""Fusion pays off on synthetic scenes: more ground-truth pixels get an accurate hint than with any
single SGM setting; the per-row numbers are the pooled ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthlab.data.synthetic import SceneConfig, SyntheticHintJob, render_sample
from depthlab.hints import PUBLISHED_GRID, format_quality_table, hint_quality
from depthlab.hints.quality import _Tally


@pytest.fixture(scope="module")
def synthetic_pairs() -> list:
    cfg = SceneConfig(height=64, width=256)  # wider than 160 px: every published setting can match
    pairs = []
    for index in range(2):
        left, right, fx, baseline_m = SyntheticHintJob(cfg, 0, "val", index).read()
        pairs.append((left, right, fx, baseline_m, render_sample(cfg, 0, "val", index)["depth"][0].numpy()))
    return pairs


def test_fused_hints_beat_every_single_setting(synthetic_pairs):
    rows = hint_quality(synthetic_pairs)
    assert [r.name for r in rows] == [s.label() for s in PUBLISHED_GRID] + ["fused"]
    *single, fused = rows
    assert all(fused.accurate > r.accurate for r in single), format_quality_table(rows)
    assert fused.coverage >= max(r.coverage for r in single)
    assert fused.gt_pixels == 2 * 64 * 256  # dense ground truth, pooled over both pairs
    for r in rows:
        assert 0 < r.accurate <= r.coverage <= 1 and 0 < r.abs_rel < 0.2
    table = format_quality_table(rows)
    assert table.splitlines()[0].startswith("| hints | coverage") and "| fused |" in table and "within 5 %" in table


def test_rows_pool_pixels_by_hand():
    tally = _Tally()
    # ground truth 2, 1, 1, none; hints 2, none, 1.2, 3 -> 3 gt pixels, 2 covered, |rel| 0 and 0.2
    tally.add(np.array([2.0, 0.0, 1.2, 3.0], np.float32), np.array([2.0, 1.0, 1.0, 0.0], np.float32), 0.05)
    tally.add(np.array([4.1], np.float32), np.array([4.0], np.float32), 0.05)  # |rel| 0.025: accurate
    row = tally.row("x", 0.05)
    assert (row.gt_pixels, row.coverage, row.accurate) == (4, 0.75, 0.5)
    assert row.abs_rel == pytest.approx((0 + 0.2 + 0.025) / 3, rel=1e-6)
    assert math.isnan(_Tally().row("empty", 0.05).abs_rel)


def test_ground_truth_must_match_the_images(synthetic_pairs):
    left, right, fx, baseline_m, gt = synthetic_pairs[0]
    with pytest.raises(ValueError, match=r"pair 0: ground truth is \(64, 255\), the images \(64, 256\)"):
        hint_quality([(left, right, fx, baseline_m, gt[:, :255])])
