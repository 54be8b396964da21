"""Stereo geometry: depth <-> disparity, the horizontal warp's pixel convention, and the warp on
rendered stereo pairs (whose right view is ray cast, not warped: an independent check)."""

from __future__ import annotations

import pytest
import torch

from depthlab.data.synthetic import SceneConfig, render_sample
from depthlab.geometry import (
    depth_to_disparity,
    disparity_to_depth,
    fx_from_intrinsics,
    stereo_calibration,
    valid_stereo_mask,
    warp_horizontal,
)


def _image(b: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


# -- depth <-> disparity ----------------------------------------------------------------------------
def test_disparity_of_a_kitti_point_by_hand():
    # fx 720 px, baseline 0.54 m, depth 10 m: 720 * 0.54 / 10 = 38.88 px; and back.
    depth = torch.full((1, 1, 2, 3), 10.0)
    disparity = depth_to_disparity(depth, torch.tensor([720.0]), torch.tensor([0.54]))
    assert torch.allclose(disparity, torch.full_like(depth, 38.88))
    assert torch.allclose(disparity_to_depth(disparity, 720.0, 0.54), depth)


def test_camera_values_are_per_sample():
    depth = torch.full((2, 1, 2, 2), 4.0)
    disparity = depth_to_disparity(depth, torch.tensor([100.0, 200.0]), torch.tensor([0.5, 0.1]))
    assert disparity[0].unique().tolist() == [12.5] and disparity[1].unique().tolist() == [5.0]


def test_round_trip_on_random_depths():
    depth = torch.rand(3, 1, 5, 7, generator=torch.Generator().manual_seed(1)) * 79 + 1  # 1..80 m
    fx, baseline = torch.tensor([721.5, 707.1, 518.9]), torch.tensor([0.54, 0.53, 0.25])
    back = disparity_to_depth(depth_to_disparity(depth, fx, baseline), fx, baseline)
    assert torch.allclose(back, depth, rtol=1e-6)


def test_no_value_converts_to_zero_with_a_finite_gradient():
    values = torch.tensor([0.0, -2.0, float("nan"), float("inf"), 8.0]).view(1, 1, 1, 5).requires_grad_()
    disparity = depth_to_disparity(values, 100.0, 0.4)
    assert disparity.detach().view(-1).tolist() == [0.0, 0.0, 0.0, 0.0, 5.0]
    assert valid_stereo_mask(values).view(-1).tolist() == [False, False, False, False, True]
    assert disparity_to_depth(values.detach(), 100.0, 0.4).view(-1).tolist() == [0.0, 0.0, 0.0, 0.0, 5.0]
    disparity.sum().backward()
    # d(40 / z)/dz = -40 / z^2 = -0.625 at z = 8; exactly 0 (not NaN) where there is no value
    assert values.grad.view(-1).tolist() == [0.0, 0.0, 0.0, 0.0, -0.625]


def test_camera_values_that_do_not_fit_the_batch_are_named():
    with pytest.raises(ValueError, match="fx: shape"):
        depth_to_disparity(torch.ones(2, 1, 3, 3), torch.tensor([1.0, 2.0, 3.0]), 0.5)


def test_fx_and_baseline_from_a_batch():
    intrinsics = torch.tensor([[721.5, 721.5, 609.6, 172.9], [707.0, 707.0, 601.9, 183.1]])
    batch = {"intrinsics": intrinsics, "baseline_m": torch.tensor([0.54, 0.53])}
    assert fx_from_intrinsics(intrinsics).tolist() == pytest.approx([721.5, 707.0])
    fx, baseline = stereo_calibration(batch)
    assert fx.tolist() == pytest.approx([721.5, 707.0]) and baseline.tolist() == pytest.approx([0.54, 0.53])
    with pytest.raises(KeyError, match="baseline_m"):
        stereo_calibration({"intrinsics": intrinsics})
    with pytest.raises(ValueError, match="intrinsics"):
        fx_from_intrinsics(torch.ones(2, 3))


# -- the warp ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("source_view", ["right", "left"])
def test_zero_disparity_is_the_identity(source_view):
    image = _image(2, 3, 11, 37)
    warped, inside = warp_horizontal(image, torch.zeros(2, 1, 11, 37), source_view)
    assert torch.allclose(warped, image, atol=1e-5, rtol=0) and inside.all()  # float32 grid rounding


@pytest.mark.parametrize("width, exact", [(16, True), (37, False)])
def test_integer_disparity_shifts_whole_columns_and_masks_what_came_from_outside(width, exact):
    image = _image(2, 3, 8, width)
    shifts = (1, 4)  # per sample
    disparity = torch.tensor(shifts, dtype=torch.float32).view(2, 1, 1, 1).expand(2, 1, 8, width).contiguous()

    def same(a: torch.Tensor, b: torch.Tensor) -> bool:
        # Power-of-two sizes normalise without rounding; others within float32 rounding.
        return torch.equal(a, b) if exact else torch.allclose(a, b, atol=1e-5, rtol=0)

    left_view, inside = warp_horizontal(image, disparity, "right")  # left(x) = right(x - k)
    right_view, inside_r = warp_horizontal(image, disparity, "left")  # right(x) = left(x + k)
    for b, k in enumerate(shifts):
        assert same(left_view[b, :, :, k:], image[b, :, :, :-k])
        assert not inside[b, :, :, :k].any() and inside[b, :, :, k:].all()
        assert same(right_view[b, :, :, :-k], image[b, :, :, k:])
        assert inside_r[b, :, :, :-k].all() and not inside_r[b, :, :, width - k:].any()


def test_half_pixel_disparity_interpolates_between_neighbours():
    row = torch.tensor([0.0, 10.0, 20.0, 30.0]).view(1, 1, 1, 4)
    warped, inside = warp_horizontal(row, torch.full((1, 1, 1, 4), 0.5))
    # x = 1, 2, 3 sample the source at 0.5, 1.5, 2.5; x = 0 at -0.5, outside the pixel centres
    assert warped[0, 0, 0, 1:].tolist() == pytest.approx([5.0, 15.0, 25.0])
    assert inside.view(-1).tolist() == [False, True, True, True]
    disparity = torch.full((1, 1, 1, 4), 0.5, requires_grad=True)
    warp_horizontal(row, disparity)[0][0, 0, 0, 2].backward()
    assert disparity.grad[0, 0, 0, 2].item() == pytest.approx(-10.0)  # d right(x - d)/dd = -slope


def test_warp_shape_and_argument_errors_are_one_line():
    with pytest.raises(ValueError, match="disparity_px must be"):
        warp_horizontal(torch.ones(2, 3, 4, 5), torch.ones(2, 1, 4, 6))
    with pytest.raises(ValueError, match="source_view"):
        warp_horizontal(torch.ones(1, 3, 4, 5), torch.ones(1, 1, 4, 5), "up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="padding_mode"):
        warp_horizontal(torch.ones(1, 3, 4, 5), torch.ones(1, 1, 4, 5), padding_mode="wrap")


# -- on rendered stereo pairs -----------------------------------------------------------------------
CFG = SceneConfig(height=96, width=128, baseline_m=0.3)


def _pixel_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean(1, keepdim=True)


@pytest.mark.parametrize("index", [1, 3])
def test_warping_the_right_view_with_the_true_disparity_reconstructs_the_left(index):
    batch = {key: value[None] for key, value in render_sample(CFG, 0, "test", index).items()}
    fx, baseline_m = stereo_calibration(batch)
    disparity = depth_to_disparity(batch["depth"], fx, baseline_m)
    assert disparity.max() > 5  # a real parallax, not a few tenths of a pixel
    left_hat, inside = warp_horizontal(batch["image_right"], disparity)
    # Which pixels the right camera sees: its own depth, warped the same way, must match ours. Where
    # it is much nearer, something hides the point from the right camera (an occlusion).
    right_depth_seen, _ = warp_horizontal(batch["depth_right"], disparity)
    relative = (right_depth_seen - batch["depth"]).abs() / batch["depth"].clamp_min(1e-6)
    candidates = inside & batch["valid"]
    visible, occluded = candidates & (relative < 0.01), candidates & (relative > 0.2)
    assert visible.sum() > 0.8 * candidates.sum() and occluded.sum() > 100

    error = _pixel_error(left_hat, batch["image"])
    true_error = error[visible].mean()
    shifted_hat, shifted_inside = warp_horizontal(batch["image_right"], disparity + 2)
    shifted_error = _pixel_error(shifted_hat, batch["image"])[visible & shifted_inside].mean()
    wrong_way_hat, wrong_inside = warp_horizontal(batch["image_right"], disparity, source_view="left")
    wrong_way_error = _pixel_error(wrong_way_hat, batch["image"])[visible & wrong_inside].mean()
    # Measured at 96x128: true 0.0046-0.0054, +2 px 0.031-0.036 (ratio 6.7), occluded 0.16-0.18.
    assert true_error < 0.01
    assert shifted_error > 3 * true_error
    assert wrong_way_error > 5 * true_error
    assert error[occluded].mean() > 5 * true_error


def test_warping_the_left_view_with_the_right_disparity_reconstructs_the_right():
    batch = {key: value[None] for key, value in render_sample(CFG, 0, "test", 2).items()}
    fx, baseline_m = stereo_calibration(batch)
    disparity_right = depth_to_disparity(batch["depth_right"], fx, baseline_m)
    right_hat, inside = warp_horizontal(batch["image"], disparity_right, source_view="left")
    left_depth_seen, _ = warp_horizontal(batch["depth"], disparity_right, source_view="left")
    visible = inside & batch["valid_right"] & ((left_depth_seen - batch["depth_right"]).abs()
                                               < 0.01 * batch["depth_right"])
    true_error = _pixel_error(right_hat, batch["image_right"])[visible].mean()
    shifted_hat, shifted_inside = warp_horizontal(batch["image"], disparity_right - 2, source_view="left")
    shifted_error = _pixel_error(shifted_hat, batch["image_right"])[visible & shifted_inside].mean()
    assert true_error < 0.01 and shifted_error > 3 * true_error  # measured 0.0025 and 0.025


def test_ssim_of_an_image_with_itself_is_one_and_hand_value_for_flat_images():
    from depthlab.geometry import SSIM_C1, ssim

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 7, 9, generator=g, dtype=torch.float64)
    assert torch.allclose(ssim(x, x), torch.ones_like(x), atol=1e-12)
    # flat images a, b: no variance, SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b = 0.2, 0.7
    value = ssim(torch.full((1, 1, 4, 5), a, dtype=torch.float64), torch.full((1, 1, 4, 5), b, dtype=torch.float64))
    assert torch.allclose(value, torch.tensor((2 * a * b + SSIM_C1) / (a * a + b * b + SSIM_C1), dtype=torch.float64))


def test_ssim_matches_a_direct_window_computation_at_an_interior_and_a_border_pixel():
    from depthlab.geometry import SSIM_C1, SSIM_C2, ssim

    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 5, 6, generator=g, dtype=torch.float64)
    y = torch.rand(1, 1, 5, 6, generator=g, dtype=torch.float64)
    xp = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    yp = torch.nn.functional.pad(y, (1, 1, 1, 1), mode="reflect")
    for r, c in ((2, 3), (0, 0)):
        wx, wy = xp[0, 0, r : r + 3, c : c + 3].flatten(), yp[0, 0, r : r + 3, c : c + 3].flatten()
        mx, my = wx.mean(), wy.mean()
        vx, vy = ((wx - mx) ** 2).mean(), ((wy - my) ** 2).mean()  # biased, as average pooling
        cxy = ((wx - mx) * (wy - my)).mean()
        want = (2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2) / ((mx**2 + my**2 + SSIM_C1) * (vx + vy + SSIM_C2))
        assert ssim(x, y)[0, 0, r, c].item() == pytest.approx(want.item(), rel=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 3, 1, 5)])
def test_target_window_stats_give_the_same_ssim_and_error_bit_for_bit(shape):
    """The photometric loss compares one target with many warps through its WindowStats: the same
    floats as passing the target itself (float32, as training runs), also on a 1-row image (replicate
    padding), and the gradient reaches the reconstruction alone."""
    from depthlab.geometry import WindowStats, reprojection_error, ssim

    g = torch.Generator().manual_seed(4)
    x, y = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    stats = WindowStats(y)
    assert torch.equal(ssim(x, stats), ssim(x, y))
    x.requires_grad_(True)
    with_stats, plain = reprojection_error(x, stats), reprojection_error(x, y)
    assert torch.equal(with_stats, plain)
    assert torch.equal(torch.autograd.grad(with_stats.sum(), x)[0], torch.autograd.grad(plain.sum(), x)[0])
    with pytest.raises(ValueError, match="one shape"):
        ssim(x[:, :2], stats)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        WindowStats(y[0])


def test_reprojection_error_hand_value():
    from depthlab.geometry import SSIM_C1, reprojection_error

    a, b = 0.2, 0.7
    x = torch.full((1, 3, 4, 5), a, dtype=torch.float64)
    y = torch.full((1, 3, 4, 5), b, dtype=torch.float64)
    s = (2 * a * b + SSIM_C1) / (a * a + b * b + SSIM_C1)
    want = 0.85 * (1 - s) / 2 + 0.15 * abs(a - b)
    err = reprojection_error(x, y)
    assert err.shape == (1, 1, 4, 5) and torch.allclose(err, torch.tensor(want, dtype=torch.float64))
    assert torch.equal(reprojection_error(x, x), torch.zeros_like(err))
    assert torch.allclose(reprojection_error(x, y, alpha=0.0), torch.tensor(abs(a - b), dtype=torch.float64))
