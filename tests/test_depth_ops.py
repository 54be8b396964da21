"""The KB crop and depth resizing, each defined once (depthlab/depth_ops.py): hand-computed values."""

from __future__ import annotations

import pytest
import torch

from depthlab.depth_ops import KB_CROP, kb_crop_box, resize_depth, resize_map


def test_kb_crop_box_bottom_centre():
    assert KB_CROP == (352, 1216)
    assert kb_crop_box(375, 1242) == (23, 13)  # BTS: top = 375 - 352, left = (1242 - 1216) // 2
    assert kb_crop_box(370, 1226) == (18, 5)
    assert kb_crop_box(376, 1241) == (24, 12)  # odd margin: the extra column on the right
    assert kb_crop_box(352, 1216) == (0, 0)
    with pytest.raises(ValueError, match="needs a frame at least that large, got 351x1242"):
        kb_crop_box(351, 1242)


def test_every_kb_crop_is_this_one():
    from depthlab.data import kitti
    from depthlab.eval import protocols

    assert kitti.kb_crop_box is kb_crop_box and kitti.KB_CROP is KB_CROP and protocols.KB_CROP_HW is KB_CROP
    assert protocols.kb_window(370, 1226) == (18, 5)


def _row(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 1, -1)


def test_resize_in_depth_and_in_inverse_depth_by_hand():
    depth = _row(1.0, 3.0)
    # align_corners: the middle pixel is the mean of its neighbours' depths, or of their inverses
    as_depth, none = resize_depth(depth, (1, 3), interpolation="align_corners")
    assert none is None and torch.allclose(as_depth, _row(1.0, 2.0, 3.0))
    as_inverse, inverse = resize_depth(depth, (1, 3), inverse=True, interpolation="align_corners")
    assert torch.allclose(inverse, _row(1.0, 2 / 3, 1 / 3))  # (1 + 1/3) / 2
    assert torch.allclose(as_inverse, _row(1.0, 1.5, 3.0))
    # half-pixel centres (OpenCV's cv2.resize, F.interpolate(align_corners=False)): to 4 columns the
    # sources are x = -0.25, 0.25, 0.75, 1.25, clamped to [0, 1]
    for interpolation in ("half_pixel", "opencv"):
        assert torch.allclose(resize_depth(depth, (1, 4), interpolation=interpolation)[0], _row(1.0, 1.5, 2.5, 3.0))
        inverse_4 = _row(1.0, 1 - 0.25 * 2 / 3, 1 - 0.75 * 2 / 3, 1 / 3)
        assert torch.allclose(resize_depth(depth, (1, 4), True, interpolation)[0], 1 / inverse_4)


def test_a_networks_own_inverse_depth_is_the_interpolated_quantity():
    depth, own = _row(1.0, 3.0), _row(0.5, 0.25)  # the network's own 1/m map wins over 1 / depth
    out, inverse = resize_depth(depth, (1, 3), inverse=True, interpolation="align_corners", inverse_depth=own)
    assert torch.allclose(inverse, _row(0.5, 0.375, 0.25)) and torch.allclose(out, _row(2.0, 8 / 3, 4.0))


def test_zero_depth_stays_finite_and_nearest_copies():
    out, _ = resize_depth(_row(0.0, 2.0), (1, 3), inverse=True, interpolation="align_corners")
    assert torch.isfinite(out).all()
    assert torch.equal(resize_map(_row(1.0, 3.0), (1, 4), "nearest"), _row(1.0, 1.0, 3.0, 3.0))
    with pytest.raises(ValueError, match="interpolation must be"):
        resize_map(_row(1.0), (1, 1), "bicubic")
