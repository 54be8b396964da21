"""SGM candidates: the published settings, random draws, and disparities of pairs with a known shift."""

from __future__ import annotations

import numpy as np
import pytest

from depthlab.hints import PUBLISHED_GRID, SGMSetting, random_settings, sgm_candidates, sgm_disparity


def shifted_pair(height: int, width: int, shift: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random texture and its copy moved by ``shift`` columns: left(x) = right(x - shift), disparity = shift."""
    rng = np.random.default_rng(seed)
    wide = rng.integers(0, 256, (height, width + shift, 3), dtype=np.uint8)
    return np.ascontiguousarray(wide[:, :width]), np.ascontiguousarray(wide[:, shift:])


def test_the_published_grid_is_spec_section_4():
    assert len(PUBLISHED_GRID) == 12
    assert {(s.block_size, s.num_disparities) for s in PUBLISHED_GRID} == {
        (b, n) for b in (1, 2, 3) for n in (64, 96, 128, 160)}
    for setting in PUBLISHED_GRID:
        assert (setting.pre_filter_cap, setting.p1, setting.p2, setting.min_disparity, setting.uniqueness_ratio,
                setting.speckle_window_size, setting.speckle_range) == (63, 36, 288, 0, 10, 100, 16)
    assert SGMSetting.from_dict(PUBLISHED_GRID[5].as_dict()) == PUBLISHED_GRID[5]


def test_random_settings_are_reproducible_distinct_and_in_range():
    draw = random_settings(5, seed=3)
    assert draw == random_settings(5, seed=3) and draw != random_settings(5, seed=4)
    assert len(set(draw)) == 5
    assert all(s.block_size in (1, 2, 3) and s.num_disparities in range(64, 161, 16) for s in draw)
    assert len(random_settings(21, seed=0)) == 21  # every combination
    with pytest.raises(ValueError, match=r"count must be in \[1, 21\]"):
        random_settings(22, seed=0)


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="num_disparities must be a positive multiple of 16"):
        SGMSetting(1, 60)
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        SGMSetting(0, 64)


def test_a_known_shift_is_found_where_the_matcher_can_see():
    left, right = shifted_pair(40, 160, shift=7)
    disparity = sgm_disparity(left, right, SGMSetting(3, 64))
    assert disparity.shape == (40, 160) and disparity.dtype == np.float32
    interior = disparity[5:-5, 64 + 5:-5]  # OpenCV leaves the first numDisparities columns unmatched
    assert np.mean(interior == 7.0) > 0.95
    assert (disparity[:, :64] <= 0).all()


def test_a_setting_wider_than_the_image_matches_nothing_instead_of_failing():
    left, right = shifted_pair(24, 128, shift=3)  # OpenCV raises for numDisparities >= width
    candidates = sgm_candidates(left, right, [SGMSetting(1, 128), SGMSetting(1, 64)])
    assert (candidates[0] == -1).all() and (candidates[1] > 0).any()


def test_opencv_block_size_2_matches_as_3():
    # A quirk of the published grid: OpenCV uses blockSize // 2 as the half window, so 2 and 3 agree.
    left, right = shifted_pair(32, 128, shift=5, seed=1)
    assert np.array_equal(sgm_disparity(left, right, SGMSetting(2, 64)), sgm_disparity(left, right, SGMSetting(3, 64)))


def test_images_must_be_a_uint8_rgb_pair():
    left, right = shifted_pair(24, 96, shift=2)
    with pytest.raises(ValueError, match=r"left must be a uint8 \(H, W, 3\) RGB image, got float32"):
        sgm_disparity(left.astype(np.float32), right, PUBLISHED_GRID[0])
    with pytest.raises(ValueError, match="a rectified pair has one size"):
        sgm_disparity(left, right[:, :90], PUBLISHED_GRID[0])
