"""Camera motion: axis-angle rotations, Monodepth2's pose matrices, and the warp by depth and pose.

The warp is checked against Monodepth2's own formulas (BackprojectDepth, Project3D and grid_sample
with align_corners=True, restated below from its layers.py), against the stereo warp it generalises,
and on a plane rendered analytically from a second camera (an independent check, no warp involved).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from depthlab.geometry import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    pose_from_parameters,
    reprojection_error,
    warp_horizontal,
    warp_with_pose,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_rotations(n: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """Axis-angle vectors with random axes and angles uniform in (0, pi)."""
    g = _gen(seed)
    axis = torch.randn(n, 3, generator=g, dtype=dtype)
    angle = torch.rand(n, 1, generator=g, dtype=dtype).clamp(1e-3, 1 - 1e-3) * math.pi
    return axis / axis.norm(dim=1, keepdim=True) * angle


def _random_poses(batch: int, seed: int) -> torch.Tensor:
    g = _gen(seed)
    axis_angle = 0.05 * torch.randn(batch, 1, 3, generator=g)
    translation = 0.2 * torch.randn(batch, 1, 3, generator=g)
    return pose_from_parameters(axis_angle, translation)


def _intrinsics(batch: int, height: int, width: int, seed: int) -> torch.Tensor:
    """KITTI-like (0.58 W, 1.92 H, 0.5 W, 0.5 H) with random jitter per sample."""
    jitter = 1 + 0.1 * (2 * torch.rand(batch, 4, generator=_gen(seed)) - 1)
    return torch.tensor([0.58 * width, 1.92 * height, 0.5 * width, 0.5 * height]) * jitter


# -- rotations and poses ----------------------------------------------------------------------------
def test_axis_angle_round_trip_over_angles_up_to_pi():
    vec = _random_rotations(256, seed=0)
    assert (matrix_to_axis_angle(axis_angle_to_matrix(vec)) - vec).abs().max() < 1e-12
    near_pi = vec / vec.norm(dim=1, keepdim=True) * (math.pi - 1e-7)  # where w = 2 sin(t) axis vanishes
    assert (matrix_to_axis_angle(axis_angle_to_matrix(near_pi)) - near_pi).abs().max() < 1e-9
    tiny = vec * 1e-5  # the Taylor branch of both directions
    assert (matrix_to_axis_angle(axis_angle_to_matrix(tiny)) - tiny).abs().max() < 1e-18
    single = _random_rotations(64, seed=1, dtype=torch.float32)
    assert (matrix_to_axis_angle(axis_angle_to_matrix(single)) - single).abs().max() < 1e-5


def test_rotations_are_orthonormal_with_determinant_one_and_match_a_hand_value():
    rotation = axis_angle_to_matrix(_random_rotations(128, seed=2))
    eye = torch.eye(3, dtype=torch.float64)
    assert (rotation @ rotation.transpose(1, 2) - eye).abs().max() < 1e-14
    assert (torch.linalg.det(rotation) - 1).abs().max() < 1e-14
    # 90 degrees about +z takes x to y (right-hand rule).
    quarter = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, math.pi / 2]], dtype=torch.float64))[0]
    assert torch.allclose(quarter @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                          torch.tensor([0.0, 1, 0], dtype=torch.float64), atol=1e-15)


def test_zero_vector_is_the_identity_with_the_generator_as_gradient():
    vec = torch.zeros(1, 3, requires_grad=True)
    rotation = axis_angle_to_matrix(vec)
    assert torch.equal(rotation.detach(), torch.eye(3)[None])
    # R = I + [v]x + O(v^2): dR[2, 1]/dv = (1, 0, 0), dR[0, 2]/dv = (0, 1, 0), dR[1, 0]/dv = (0, 0, 1).
    (grad,) = torch.autograd.grad(rotation[0, 2, 1] + 2 * rotation[0, 0, 2] + 3 * rotation[0, 1, 0], vec)
    assert torch.isfinite(grad).all() and torch.equal(grad, torch.tensor([[1.0, 2.0, 3.0]]))
    (back,) = torch.autograd.grad(matrix_to_axis_angle(axis_angle_to_matrix(vec)).sum(), vec)
    assert torch.isfinite(back).all() and torch.allclose(back, torch.ones(1, 3))


def test_pose_composes_rotation_then_translation_and_invert_is_its_inverse():
    g = _gen(3)
    axis_angle = 0.3 * torch.randn(4, 1, 3, generator=g, dtype=torch.float64)
    translation = torch.randn(4, 1, 3, generator=g, dtype=torch.float64)
    forward = pose_from_parameters(axis_angle, translation)
    inverse = pose_from_parameters(axis_angle[:, 0], translation[:, 0], invert=True)
    eye = torch.eye(4, dtype=torch.float64).expand(4, 4, 4)
    assert (forward @ inverse - eye).abs().max() < 1e-14 and (inverse @ forward - eye).abs().max() < 1e-14
    # M = T(t) R: x -> R x + t, last row (0, 0, 0, 1).
    point = torch.randn(4, 3, generator=g, dtype=torch.float64)
    moved = (forward @ torch.cat([point, torch.ones(4, 1, dtype=torch.float64)], 1)[..., None])[:, :3, 0]
    expected = (axis_angle_to_matrix(axis_angle[:, 0]) @ point[..., None])[..., 0] + translation[:, 0]
    assert (moved - expected).abs().max() < 1e-14
    assert torch.equal(forward[:, 3], torch.tensor([0.0, 0, 0, 1], dtype=torch.float64).expand(4, 4))


# -- the warp: Monodepth2's formulas, the stereo warp, an analytic scene, gradients -----------------
def _monodepth2_warp(source, depth, intrinsics, pose):
    """Monodepth2 layers.py restated: BackprojectDepth, Project3D, grid_sample(align_corners=True)."""
    batch, _, height, width = source.shape
    fx, fy, cx, cy = intrinsics.unbind(-1)
    k = torch.zeros(batch, 4, 4)
    k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2], k[:, 2, 2], k[:, 3, 3] = fx, fy, cx, cy, 1, 1
    inv_k = torch.linalg.inv(k)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                            torch.arange(width, dtype=torch.float32), indexing="ij")
    ones = torch.ones(batch, 1, height * width)
    pixels = torch.cat([torch.stack([xs.reshape(-1), ys.reshape(-1)])[None].expand(batch, 2, -1), ones], 1)
    cam_points = depth.view(batch, 1, -1) * (inv_k[:, :3, :3] @ pixels)
    cam_points = torch.cat([cam_points, ones], 1)
    projected = (k @ pose)[:, :3, :] @ cam_points
    pix = projected[:, :2] / (projected[:, 2:3] + 1e-7)
    pix = pix.view(batch, 2, height, width).permute(0, 2, 3, 1).clone()
    pix[..., 0] /= width - 1
    pix[..., 1] /= height - 1
    grid = (pix - 0.5) * 2
    return F.grid_sample(source, grid, padding_mode="border", align_corners=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_warp_equals_monodepth2_layers(seed):
    batch, height, width = 3, 24, 40
    g = _gen(10 + seed)
    source = torch.rand(batch, 3, height, width, generator=g)
    depth = 1 + 19 * torch.rand(batch, 1, height, width, generator=g)
    intrinsics = _intrinsics(batch, height, width, seed)
    pose = _random_poses(batch, seed)
    warped, inside = warp_with_pose(source, depth, intrinsics, pose)
    expected = _monodepth2_warp(source, depth, intrinsics, pose)
    assert (warped - expected).abs().max() <= 1e-4
    assert 0.2 < inside.float().mean() < 1  # samples both inside and outside the source were compared


@pytest.mark.parametrize("source_view, sign", [("right", -1.0), ("left", 1.0)])
def test_x_translation_is_the_stereo_warp(source_view, sign):
    # Target left, source right: the right camera sits `baseline` along +x, so a target point X is
    # at X - (baseline, 0, 0) in the source camera: pose translation (-baseline, 0, 0); and + for left.
    batch, height, width, baseline = 2, 16, 48, 0.54
    g = _gen(20)
    source = torch.rand(batch, 3, height, width, generator=g)
    depth = 2 + 30 * torch.rand(batch, 1, height, width, generator=g)
    intrinsics = _intrinsics(batch, height, width, seed=21)
    translation = torch.tensor([sign * baseline, 0.0, 0.0]).expand(batch, 3)
    pose = pose_from_parameters(torch.zeros(batch, 3), translation)
    disparity = intrinsics[:, 0].view(batch, 1, 1, 1) * baseline / depth
    expected, expected_inside = warp_horizontal(source, disparity, source_view=source_view)
    warped, inside = warp_with_pose(source, depth, intrinsics, pose, eps=0.0)
    assert (warped - expected).abs().max() < 2e-5
    # The masks differ only within 1e-3 px of the source's first and last column (the tolerance).
    column = torch.arange(width).view(1, 1, 1, width) + sign * disparity
    edge = (column.abs() < 2e-3) | ((column - (width - 1)).abs() < 2e-3)
    assert torch.equal(inside & ~edge, expected_inside & ~edge) and inside[:, :, [0, -1]].any()
    # With Monodepth2's eps the projected column moves by u * 1e-7 / depth: still far below a pixel.
    with_eps, _ = warp_with_pose(source, depth, intrinsics, pose)
    assert (with_eps - expected).abs().max() < 1e-4


def _plane_texture(x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    """A smooth random texture on the plane, in [0.1, 0.9]: four sinusoids of 2-6 m wavelength."""
    g = _gen(seed)
    value = torch.full_like(x, 0.5)
    for _ in range(4):
        angle, freq, phase = torch.rand(3, generator=g, dtype=torch.float64).tolist()
        angle, freq, phase = angle * math.pi, 1 + 2 * freq, phase * 2 * math.pi  # freq in rad/m
        value = value + 0.1 * torch.sin(freq * (math.cos(angle) * x + math.sin(angle) * y) + phase)
    return value


def test_known_motion_over_a_textured_plane_reconstructs_the_target():
    # Target camera at the origin looking at the plane z = 4 m; the source camera is moved by `pose`
    # (target-camera points -> source-camera points). Both images are rendered by ray casting.
    height, width, plane_z, seed = 48, 64, 4.0, 30
    fx = fy = 60.0
    cx, cy = (width - 1) / 2, (height - 1) / 2
    axis_angle = torch.tensor([[0.02, -0.03, 0.01]], dtype=torch.float64)
    translation = torch.tensor([[0.15, -0.05, 0.3]], dtype=torch.float64)
    pose = pose_from_parameters(axis_angle, translation)
    rotation, shift = pose[0, :3, :3], pose[0, :3, 3]
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                          indexing="ij")
    rays = torch.stack([(u - cx) / fx, (v - cy) / fy, torch.ones_like(u)], dim=-1)  # (H, W, 3)
    target = _plane_texture(rays[..., 0] * plane_z, rays[..., 1] * plane_z, seed)
    centre = -rotation.T @ shift  # the source camera's centre in the target frame
    directions = rays @ rotation  # R^T r for each ray
    reach = (plane_z - centre[2]) / directions[..., 2]
    hit = centre + reach[..., None] * directions
    source = _plane_texture(hit[..., 0], hit[..., 1], seed)

    as_image = lambda t: t.float()[None, None].expand(1, 3, height, width).contiguous()  # noqa: E731
    depth = torch.full((1, 1, height, width), plane_z)
    intrinsics = torch.tensor([[fx, fy, cx, cy]])
    warped, inside = warp_with_pose(as_image(source), depth, intrinsics, pose.float())
    error = reprojection_error(warped, as_image(target), alpha=0)[inside]
    assert inside.float().mean() > 0.6
    assert error.mean() < 1e-3
    unmoved, _ = warp_with_pose(as_image(source), depth, intrinsics, torch.eye(4)[None])
    assert reprojection_error(unmoved, as_image(target), alpha=0)[inside].mean() > 20 * error.mean()


def test_gradients_through_depth_and_pose_match_finite_differences():
    g = _gen(40)
    source = torch.rand(1, 2, 4, 5, generator=g, dtype=torch.float64)
    depth = (2 + torch.rand(1, 1, 4, 5, generator=g, dtype=torch.float64)).requires_grad_()
    axis_angle = torch.tensor([[0.02, -0.01, 0.03]], dtype=torch.float64, requires_grad=True)
    translation = torch.tensor([[0.13, 0.07, -0.04]], dtype=torch.float64, requires_grad=True)
    intrinsics = torch.tensor([[4.1, 3.9, 2.2, 1.4]], dtype=torch.float64)

    def warp(depth, axis_angle, translation):
        return warp_with_pose(source, depth, intrinsics, pose_from_parameters(axis_angle, translation))[0]

    assert torch.autograd.gradcheck(warp, (depth, axis_angle, translation), eps=1e-6, atol=1e-6)
    axis_zero = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)  # the identity rotation too
    assert torch.autograd.gradcheck(warp, (depth, axis_zero, translation), eps=1e-6, atol=1e-6)


def test_bad_shapes_are_refused():
    source, depth, intrinsics, pose = torch.rand(2, 3, 4, 5), torch.ones(2, 1, 4, 5), torch.ones(2, 4), torch.eye(4)
    with pytest.raises(ValueError, match="pose must be"):
        warp_with_pose(source, depth, intrinsics, pose)
    with pytest.raises(ValueError, match="intrinsics must be"):
        warp_with_pose(source, depth, torch.ones(4), pose.expand(2, 4, 4))
    with pytest.raises(ValueError, match=r"axis_angle: expected \(B, 3\)"):
        pose_from_parameters(torch.zeros(2, 2, 3), torch.zeros(2, 3))
