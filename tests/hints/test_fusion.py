"""Fusion: the candidate that reconstructs the view best wins, a candidate without a disparity never
does; the right view's hints (mirrored pair) equal direct fusion with the left view as source."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_sgm import shifted_pair

from depthlab.geometry import reprojection_error, warp_horizontal
from depthlab.hints import (
    PUBLISHED_GRID, SGMSetting, compute_hints, compute_stereo_hints, fuse_disparities, sgm_candidates,
)
from depthlab.hints import fusion
from depthlab.hints.fusion import _as_tensor

FX, BASELINE = 100.0, 0.5  # fx * B = 50: disparity 4 px <-> 12.5 m, 8 px <-> 6.25 m


def test_a_candidate_without_disparity_never_wins_even_with_the_lower_error():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 40, 3), dtype=np.uint8)
    # Both views identical: warping by 0 reconstructs perfectly, by 3 it does not.
    no_value = np.zeros((16, 40), np.float32)
    no_value[:8] = -1  # OpenCV's "no match" in the top half, a zero disparity below
    three = np.full((16, 40), 3.0, np.float32)
    three[:, 30:] = -1  # neither candidate has a disparity in these columns
    zero_error = reprojection_error(*[_as_tensor(image)] * 2)
    shifted, _ = warp_horizontal(_as_tensor(image), torch.full((1, 1, 16, 40), 3.0))
    three_error = reprojection_error(shifted, _as_tensor(image))
    assert (zero_error[0, 0, :, :30] < three_error[0, 0, :, :30]).all()  # the published rule would pick candidate 0

    disparity, winner = fuse_disparities(image, image, np.stack([no_value, three]))
    assert (winner[:, :30] == 1).all() and (disparity[:, :30] == 3).all()
    assert (winner[:, 30:] == -1).all() and (disparity[:, 30:] == 0).all()


def test_the_true_shift_wins_and_converts_to_depth():
    left, right = shifted_pair(24, 96, shift=4)
    candidates = np.stack([np.full((24, 96), 9.0, np.float32), np.full((24, 96), 4.0, np.float32)])
    disparity, winner = fuse_disparities(left, right, candidates)
    assert (winner[:, 9:] == 1).all() and (disparity[:, 9:] == 4).all()  # columns whose samples stay inside


def test_a_repeated_candidate_is_scored_once_and_changes_nothing(monkeypatch):
    left, right = shifted_pair(24, 96, shift=4, seed=3)
    rng = np.random.default_rng(3)
    a, b = (rng.choice([-1.0, 2.0, 4.0, 6.0], size=(24, 96)).astype(np.float32) for _ in range(2))
    disparity, winner = fuse_disparities(left, right, np.stack([a, b]))
    calls = []
    score = fusion._ReprojectionScorer.error
    monkeypatch.setattr(fusion._ReprojectionScorer, "error", lambda self, warped: calls.append(1) or score(self, warped))
    repeated, repeated_winner = fuse_disparities(left, right, np.stack([a, b, a, b]))
    assert len(calls) == 2
    assert np.array_equal(disparity, repeated) and np.array_equal(winner, repeated_winner)
    assert set(np.unique(winner)) == {-1, 0, 1}


def test_left_and_right_hints_of_a_shifted_pair_by_hand():
    left, right = shifted_pair(32, 160, shift=4)
    hints = compute_stereo_hints(left, right, FX, BASELINE)
    assert hints.depth.shape == hints.depth_right.shape == (32, 160) and hints.depth.dtype == np.float32
    assert np.array_equal(hints.valid, hints.depth > 0) and np.array_equal(hints.valid_right, hints.depth_right > 0)
    # Left view: matched from column 64 on (numDisparities 64); right view: mirrored, so up to W - 64.
    assert np.mean(hints.depth[4:-4, 70:-4] == 12.5) > 0.95
    assert np.mean(hints.depth_right[4:-4, 4:90] == 12.5) > 0.95
    assert not hints.valid[:, :64].any() and not hints.valid_right[:, -64:].any()
    depth, valid = compute_hints(left, right, FX, BASELINE)
    assert np.array_equal(depth, hints.depth) and np.array_equal(valid, hints.valid)


def test_mirrored_fusion_equals_direct_fusion_of_the_right_view():
    rng = np.random.default_rng(1)
    height, width = 24, 200
    left = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    right = np.ascontiguousarray(np.roll(left, -6, axis=1))  # right(x) = left(x + 6)
    settings = [SGMSetting(1, 64), SGMSetting(3, 96), SGMSetting(3, 128)]
    # The right view's SGM candidates: matched on the mirrored pair, mirrored back to right-image columns.
    candidates = sgm_candidates(right[:, ::-1].copy(), left[:, ::-1].copy(), settings)[:, :, ::-1].copy()
    direct, _ = fuse_disparities(right, left, candidates, source_view="left")  # right(x) = left(x + d)
    hints = compute_stereo_hints(left, right, FX, BASELINE, settings)
    expected = np.where(direct > 0, np.float32(FX * BASELINE) / np.where(direct > 0, direct, 1), 0)
    assert hints.valid_right.mean() > 0.3
    assert np.allclose(hints.depth_right, expected, rtol=1e-6, atol=0)

    # The two forms also agree where the candidates disagree (random disparities on every 3rd column).
    noisy = candidates.copy()
    noisy[:, :, ::3] = rng.uniform(-1, 20, size=noisy[:, :, ::3].shape).astype(np.float32)
    direct, direct_winner = fuse_disparities(right, left, noisy, source_view="left")
    mirrored, mirrored_winner = fuse_disparities(right[:, ::-1].copy(), left[:, ::-1].copy(), noisy[:, :, ::-1].copy())
    assert np.array_equal(direct_winner, mirrored_winner[:, ::-1])
    assert np.array_equal(direct, mirrored[:, ::-1])
    assert set(np.unique(direct_winner[:, ::3])) == {0, 1, 2}  # every candidate wins somewhere: a real race


def test_matching_at_a_smaller_size_scales_disparities_back():
    left, right = shifted_pair(64, 320, shift=8, seed=2)
    settings = [SGMSetting(3, 64)]
    depth, _ = compute_hints(left, right, FX, BASELINE, settings, size=(32, 160))  # the shift is 4 px there
    assert depth.shape == (64, 320)
    assert np.mean(depth[8:-8, 140:-8] == 6.25) > 0.9  # 4 px x 320 / 160 = 8 px -> 50 / 8 m
    native, _ = compute_hints(left, right, FX, BASELINE, settings)
    same, _ = compute_hints(left, right, FX, BASELINE, settings, size=(64, 320))
    assert np.array_equal(native, same)


def test_bad_camera_or_size_is_one_line():
    left, right = shifted_pair(16, 96, shift=2)
    with pytest.raises(ValueError, match="fx .* and baseline_m .* must be finite and > 0, got 100.0, 0.0"):
        compute_hints(left, right, FX, 0.0)
    with pytest.raises(ValueError, match=r"size must be \(height, width\)"):
        compute_hints(left, right, FX, BASELINE, PUBLISHED_GRID[:1], size=(16,))
    with pytest.raises(ValueError, match=r"candidates must be \(K, H, W\)"):
        fuse_disparities(left, right, np.ones((2, 16, 90), np.float32))
