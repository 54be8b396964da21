"""Stereo and camera geometry of rectified pairs: each formula once, as pure torch functions.

Conventions, shared with the data pipeline (``depthlab.data.transforms``) and ``intrinsics``:

- Maps are batch-shaped: depth and disparity (B, 1, H, W), images (B, C, H, W). Camera values are
  per sample: ``fx`` (B,) pixels and ``baseline_m`` (B,) metres, or scalars (a Python number, a
  0-d tensor) that apply to every sample.
- Pixel centres at integer coordinates (OpenCV, KITTI P_rect): column x covers [x - 0.5, x + 0.5],
  an image of width W spans [-0.5, W - 0.5].
- Rectified pair: the right camera sits ``baseline_m`` along the left camera's +x axis. A point at
  depth z seen at column x_left in the left image is at x_right = x_left - d in the right image,
  with the disparity d = fx * baseline_m / z > 0 in pixels.
- "Disparity" is pixels. Inverse depth (1/m) is another quantity: disparity_px = fx * baseline_m *
  inverse_depth.
- No value is 0: depth 0 is "no measurement" throughout depthlab, and a depth or disparity that is
  not finite or not > 0 converts to 0. :func:`valid_stereo_mask` says where a map has a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

PADDING_MODES = ("zeros", "border", "reflection")


def fx_from_intrinsics(intrinsics: Tensor) -> Tensor:
    """Horizontal focal length in pixels: ``intrinsics`` (B, 4) fx, fy, cx, cy -> fx (B,)."""
    if intrinsics.ndim < 1 or intrinsics.shape[-1] != 4:
        raise ValueError(f"intrinsics: expected (B, 4) fx, fy, cx, cy, got shape {tuple(intrinsics.shape)}")
    return intrinsics[..., 0]


def stereo_calibration(batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
    """``(fx, baseline_m)``, each (B,), of a collated stereo batch (its ``intrinsics`` and ``baseline_m``)."""
    missing = [key for key in ("intrinsics", "baseline_m") if key not in batch]
    if missing:
        raise KeyError(f"stereo geometry needs batch key(s) {', '.join(missing)} (a stereo data module provides them)")
    return fx_from_intrinsics(batch["intrinsics"]), batch["baseline_m"]


def _per_sample(value: Tensor | float, like: Tensor, name: str) -> Tensor:
    """``value`` shaped to broadcast against maps ``like`` (B, ...): (B,) -> (B, 1, ..., 1)."""
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if value.ndim == 1:
        value = value.reshape(-1, *([1] * (like.ndim - 1)))
    try:
        torch.broadcast_shapes(value.shape, like.shape)
    except RuntimeError:
        raise ValueError(f"{name}: shape {tuple(value.shape)} does not fit maps of shape {tuple(like.shape)} "
                         "(give one value per sample, (B,), or a scalar)") from None
    return value


def valid_stereo_mask(values: Tensor) -> Tensor:
    """Bool mask of ``values``' shape: True where a depth or disparity has a value (finite and > 0)."""
    return torch.isfinite(values) & (values > 0)


def _focal_baseline_over(values: Tensor, fx: Tensor | float, baseline_m: Tensor | float) -> Tensor:
    """fx * baseline_m / values where values are valid, else 0 (depth <-> disparity: the same formula).

    The division sees 1 at invalid pixels, so neither the value nor the gradient there is inf or NaN
    (``torch.where`` alone would pass 0 * inf = NaN back through the unused branch).
    """
    scale = _per_sample(fx, values, "fx") * _per_sample(baseline_m, values, "baseline_m")
    valid = valid_stereo_mask(values)
    safe = torch.where(valid, values, torch.ones_like(values))
    return torch.where(valid, scale / safe, torch.zeros_like(values))


def depth_to_disparity(depth_m: Tensor, fx: Tensor | float, baseline_m: Tensor | float) -> Tensor:
    """Disparity in pixels of a depth map: d = fx * baseline_m / depth_m.

    Args:
        depth_m: (B, 1, H, W) metres; 0 (or negative, NaN, inf) = no value.
        fx: (B,) or scalar, pixels (> 0).
        baseline_m: (B,) or scalar, metres (> 0).

    Returns:
        (B, 1, H, W) pixels; 0 where ``depth_m`` has no value.
    """
    return _focal_baseline_over(depth_m, fx, baseline_m)


def disparity_to_depth(disparity_px: Tensor, fx: Tensor | float, baseline_m: Tensor | float) -> Tensor:
    """Depth in metres of a disparity map: z = fx * baseline_m / disparity_px (inverse of
    :func:`depth_to_disparity`).

    A disparity that is 0 or negative (SGM's "no match", a point at infinity) or not finite gives
    depth 0, i.e. no measurement; mask with ``valid_stereo_mask(disparity_px)`` or ``depth > 0``.

    Args:
        disparity_px: (B, 1, H, W) pixels.
        fx: (B,) or scalar, pixels (> 0).
        baseline_m: (B,) or scalar, metres (> 0).

    Returns:
        (B, 1, H, W) metres; 0 where the disparity has no value.
    """
    return _focal_baseline_over(disparity_px, fx, baseline_m)


def warp_horizontal(
    source: Tensor,
    disparity_px: Tensor,
    source_view: Literal["right", "left"] = "right",
    padding_mode: str = "border",
) -> tuple[Tensor, Tensor]:
    """Reconstruct one view of a rectified pair by sampling the other view along its rows.

    With ``source_view="right"`` (default) ``source`` is the right image and the result is the left
    view: target(x, y) = source(x - d(x, y), y). With ``source_view="left"`` ``source`` is the left
    image and the result is the right view: target(x, y) = source(x + d(x, y), y). In both cases
    ``disparity_px`` is the *target* view's disparity (> 0, from the target's depth through
    :func:`depth_to_disparity`).

    Sampling is bilinear (differentiable in ``source`` and ``disparity_px``) with pixel centres at
    integers: the grid is normalised as ``(2 x + 1) / W - 1`` for ``grid_sample`` with
    ``align_corners=False``, so a constant integer disparity k moves the image by exactly k columns.
    Exactly up to the rounding of the normalised grid: bit-exact when W and H are powers of two;
    otherwise in float32 the sample lands within about W * 6e-8 px of its column (1e-4 px at
    W = 1242, so 2e-6 of a [0, 1] value at 128 px, 7e-5 at 1242 on white noise); float64 inputs
    sample in float64.

    Occlusions are not detected: an occluded target pixel gets the colour of whatever the source
    shows at x - d (usually the occluder).

    Args:
        source: (B, C, H, W) the other view (any float dtype).
        disparity_px: (B, 1, H, W) pixels.
        source_view: which view ``source`` is, ``right`` or ``left``.
        padding_mode: ``grid_sample``'s fill for samples that leave the source (``border``,
            ``zeros``, ``reflection``); those pixels are False in the mask whatever the mode. The
            default ``border`` keeps samples just past the edge from fading towards black.

    Returns:
        ``(warped, inside)``: warped (B, C, H, W) in ``source``'s dtype; inside (B, 1, H, W) bool,
        True where the source column x -/+ d lies in [0, W - 1], so that both bilinear neighbours
        are real source pixels (False also where the disparity is NaN).
    """
    if source.ndim != 4:
        raise ValueError(f"warp_horizontal: source must be (B, C, H, W), got shape {tuple(source.shape)}")
    batch, _, height, width = source.shape
    if disparity_px.shape != (batch, 1, height, width):
        raise ValueError(f"warp_horizontal: disparity_px must be {(batch, 1, height, width)} (source's B, H, W), "
                         f"got {tuple(disparity_px.shape)}")
    if source_view not in ("right", "left"):
        raise ValueError(f"warp_horizontal: source_view must be 'right' or 'left', got {source_view!r}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"warp_horizontal: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    # Sample in float32 or wider: a half-precision grid in [-1, 1] resolves only ~1/1000 of the
    # width (0.6 px at W = 640), which would blur an exact integer shift.
    dtype = torch.promote_types(torch.promote_types(source.dtype, disparity_px.dtype), torch.float32)
    disparity = disparity_px.to(dtype)
    x = torch.arange(width, dtype=dtype, device=source.device).view(1, 1, 1, width)
    y = torch.arange(height, dtype=dtype, device=source.device).view(1, 1, height, 1)
    x_source = x - disparity if source_view == "right" else x + disparity
    inside = (x_source >= 0) & (x_source <= width - 1)
    grid_x = (2 * x_source + 1) / width - 1
    grid_y = ((2 * y + 1) / height - 1).expand_as(grid_x)
    grid = torch.cat([grid_x, grid_y], dim=1).permute(0, 2, 3, 1)  # (B, H, W, 2): x then y
    warped = F.grid_sample(source.to(dtype), grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return warped.to(source.dtype), inside


# --- photometric comparison of two views (Monodepth2 layers.py: SSIM and the reprojection error) ---

SSIM_C1 = 0.01**2  # SSIM constants for images in [0, 1] (Wang et al. 2004; monodepth2)
SSIM_C2 = 0.03**2
REPROJECTION_ALPHA = 0.85  # weight of the SSIM term against L1 (Godard et al. 2017; monodepth2)


class WindowStats:
    """What :func:`ssim` needs of one image that many others are compared with (the target view of a
    photometric loss, against each warped source and scale): the image, its reflection-padded copy,
    and its 3x3 local mean and biased variance. :func:`ssim` with these gives exactly its value with
    the image itself (the same operations in the same order), with two of its five poolings saved."""

    __slots__ = ("image", "padded", "mean", "variance")

    def __init__(self, image: Tensor) -> None:
        if image.ndim != 4:
            raise ValueError(f"WindowStats: expected a (B, C, H, W) image, got {tuple(image.shape)}")
        self.image = image
        self.padded = F.pad(image, (1, 1, 1, 1), mode=_ssim_padding(image))
        self.mean = F.avg_pool2d(self.padded, 3, 1)
        self.variance = F.avg_pool2d(self.padded * self.padded, 3, 1) - self.mean * self.mean


def _ssim_padding(x: Tensor) -> str:
    return "reflect" if min(x.shape[-2:]) > 1 else "replicate"  # reflection needs 2 pixels per side


def ssim(x: Tensor, y: Tensor | WindowStats) -> Tensor:
    """Per-pixel structural similarity of two images (B, C, H, W) in [0, 1], Monodepth2's form.

    Local means, biased variances and covariance over 3x3 windows (average pooling after a
    reflection padding of 1), C1 = 0.01^2, C2 = 0.03^2::

        SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))

    ``y`` may be given as its :class:`WindowStats` (computed once for many ``x``).
    Returns (B, C, H, W); 1 where the two images are identical.
    """
    stats = y if isinstance(y, WindowStats) else None
    y_image = stats.image if stats is not None else y
    if x.shape != y_image.shape or x.ndim != 4:
        raise ValueError(f"ssim: expected two (B, C, H, W) images of one shape, got {tuple(x.shape)} and {tuple(y_image.shape)}")
    if stats is None:
        stats = WindowStats(y_image)
    x, y = F.pad(x, (1, 1, 1, 1), mode=_ssim_padding(x)), stats.padded
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), stats.mean
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x * mu_x
    sigma_y = stats.variance
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    denominator = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return numerator / denominator


def reprojection_error(pred: Tensor, target: Tensor | WindowStats, alpha: float = REPROJECTION_ALPHA) -> Tensor:
    """Per-pixel photometric error of a reconstructed view, (B, C, H, W) each -> (B, 1, H, W).

    ``alpha * clamp((1 - SSIM) / 2, 0, 1) + (1 - alpha) * |pred - target|``, averaged over the
    channels (Monodepth2 ``compute_reprojection_loss``; alpha 0.85). ``target`` may be given as its
    :class:`WindowStats`, to compute them once for many reconstructions of one view.
    """
    target_image = target.image if isinstance(target, WindowStats) else target
    l1 = (pred - target_image).abs().mean(1, keepdim=True)
    if alpha == 0:
        return l1
    structure = ((1 - ssim(pred, target)) / 2).clamp(0, 1).mean(1, keepdim=True)
    return alpha * structure + (1 - alpha) * l1


# --- camera motion: rotations, poses and the warp of a view by depth and pose (Monodepth2 M/MS) ---

# Below this squared angle (rad^2) the rotation coefficients use their Taylor series: the closed
# forms are exact but 0/0 at the zero vector, and the series keeps values and gradients finite there.
_SMALL_ANGLE_SQ = 1e-6
PROJECTION_EPS = 1e-7  # added to the projected depth before the division (Monodepth2 Project3D)
# ``inside`` of warp_with_pose accepts a projection this far (pixels) past the edge: the projection
# of an unmoved edge row lands there by rounding (v z / z), and border padding samples it as the edge.
INSIDE_TOLERANCE_PX = 1e-3


def _skew(vec: Tensor) -> Tensor:
    """(B, 3) -> (B, 3, 3) cross-product matrices: ``_skew(a) @ b == a x b``."""
    x, y, z = vec.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).view(*vec.shape[:-1], 3, 3)


def _as_batch_of_vectors(value: Tensor, name: str) -> Tensor:
    """(B, 3) or (B, 1, 3) -> (B, 3) (Monodepth2's pose decoder returns (B, 1, 3) per frame)."""
    if value.ndim == 3 and value.shape[1] == 1:
        value = value[:, 0]
    if value.ndim != 2 or value.shape[-1] != 3:
        raise ValueError(f"{name}: expected (B, 3) or (B, 1, 3), got shape {tuple(value.shape)}")
    return value


def axis_angle_to_matrix(vec: Tensor) -> Tensor:
    """Rotation matrices (B, 3, 3) of axis-angle vectors (B, 3) (Rodrigues' formula).

    The vector's direction is the axis, its length the angle in radians, counter-clockwise about
    the axis (right-hand rule): ``R = I + a K + b K^2`` with ``K`` the cross-product matrix of
    ``vec``, ``a = sin(t) / t`` and ``b = (1 - cos(t)) / t^2`` for the angle ``t = |vec|``.

    ``b`` is evaluated as ``sin(t / 2)^2 / (t^2 / 2)`` (no cancellation in ``1 - cos t`` at small
    angles), and both coefficients switch to their Taylor series below ``t = 1e-3``, so the zero
    vector gives the identity with finite gradients (dR/dvec at 0 is the generator ``K``).
    Monodepth2's ``rot_from_axisangle`` is the same rotation except that it divides the vector by
    ``t + 1e-7``: its axis is shortened by a relative 1e-7 / t (1e-4 at t = 1e-3).
    """
    vec = _as_batch_of_vectors(vec, "axis_angle_to_matrix")
    theta_sq = (vec * vec).sum(-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    # The closed forms see 1 where the series is used, so their (unused) gradient is not NaN.
    theta = torch.where(small, torch.ones_like(theta_sq), theta_sq).sqrt()
    a = torch.where(small, 1 - theta_sq / 6 + theta_sq**2 / 120, torch.sin(theta) / theta)
    half_sinc = torch.sin(theta / 2) / (theta / 2)
    b = torch.where(small, 0.5 - theta_sq / 24 + theta_sq**2 / 720, 0.5 * half_sinc * half_sinc)
    k = _skew(vec)
    eye = torch.eye(3, dtype=vec.dtype, device=vec.device).expand_as(k)
    return eye + a[:, None, None] * k + b[:, None, None] * (k @ k)


def matrix_to_axis_angle(rotation: Tensor) -> Tensor:
    """Axis-angle vectors (B, 3) of rotation matrices (B, 3, 3), inverse of :func:`axis_angle_to_matrix`.

    The angle is in [0, pi]: ``t = atan2(|w| / 2, (trace - 1) / 2)`` with ``w`` the axial vector
    ``(R32 - R23, R13 - R31, R21 - R12) = 2 sin(t) axis``. For ``cos t >= 0`` the result is
    ``w t / (2 sin t)`` (a Taylor series at tiny angles); for ``cos t < 0``, where ``sin t`` and so
    ``w`` vanish towards pi, the axis comes from the symmetric part instead,
    ``axis axis^T = (R + R^T - 2 cos(t) I) / (2 (1 - cos t))`` (its largest column, signed as
    ``w``), which stays accurate up to and at pi. At exactly pi, a vector and its negative are the same
    rotation and either may be returned. The input is assumed orthonormal with determinant 1.
    """
    if rotation.ndim != 3 or rotation.shape[-2:] != (3, 3):
        raise ValueError(f"matrix_to_axis_angle: expected (B, 3, 3), got shape {tuple(rotation.shape)}")
    r = rotation
    w = torch.stack([r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]], dim=-1)
    cos = ((r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    sin = w.norm(dim=-1) / 2
    theta = torch.atan2(sin, cos)
    # Near 0: w t / (2 sin t), with t / sin t = 1 + t^2 / 6 + 7 t^4 / 360 at tiny angles.
    small = theta * theta < _SMALL_ANGLE_SQ
    safe_sin = torch.where(small, torch.ones_like(sin), sin)
    factor = torch.where(small, 1 + theta**2 / 6 + 7 * theta**4 / 360, theta / safe_sin) / 2
    near_zero = w * factor[:, None]
    # Near pi: the axis from the symmetric part (a (B, 3, 3) outer product of the unit axis).
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    outer = (r + r.transpose(1, 2)) / 2 - cos[:, None, None] * eye
    outer = outer / torch.where(cos < 0, 1 - cos, torch.ones_like(cos))[:, None, None]
    column = outer.diagonal(dim1=-2, dim2=-1).argmax(-1)
    axis = outer.gather(2, column[:, None, None].expand(-1, 3, 1))[..., 0]  # axis[k] * axis
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(r.dtype).tiny)
    sign = torch.where((axis * w).sum(-1) < 0, -1.0, 1.0).to(r.dtype)
    near_pi = axis * (sign * theta)[:, None]
    return torch.where((cos < 0)[:, None], near_pi, near_zero)


def pose_from_parameters(axis_angle: Tensor, translation: Tensor, invert: bool = False) -> Tensor:
    """4x4 rigid transforms (B, 4, 4) from a pose network's axis-angle and translation.

    Monodepth2's ``transformation_from_parameters`` (trainer ``predict_poses``): with ``R`` from
    :func:`axis_angle_to_matrix` and ``T(t)`` the translation by ``t``,

    - ``invert=False``: ``M = T(t) @ R``, i.e. ``x -> R x + t``;
    - ``invert=True``: ``M = R^T @ T(-t)``, i.e. ``x -> R^T (x - t)``, the inverse of the former.

    The result is used as the ``pose`` of :func:`warp_with_pose`: it maps points in the target
    (frame 0) camera to the source camera. Monodepth2 feeds the pose network the two frames in
    temporal order, so for source frame +1 it sees (0, +1) and its output is used as is; for
    source frame -1 it sees (-1, 0) and the output is inverted (``invert=True``). The network
    learns whatever motion makes the warp work; only this pairing of order and inversion is fixed.

    Args:
        axis_angle: (B, 3) or (B, 1, 3) radians.
        translation: (B, 3) or (B, 1, 3), in the units of depth (metres for a metric network).
        invert: return the inverse transform.

    Returns:
        (B, 4, 4) in the dtype of the inputs (last row 0, 0, 0, 1).
    """
    axis_angle = _as_batch_of_vectors(axis_angle, "pose_from_parameters: axis_angle")
    translation = _as_batch_of_vectors(translation, "pose_from_parameters: translation")
    if axis_angle.shape[0] != translation.shape[0]:
        raise ValueError(f"pose_from_parameters: axis_angle {tuple(axis_angle.shape)} and translation "
                         f"{tuple(translation.shape)} have different batch sizes")
    dtype = torch.promote_types(axis_angle.dtype, translation.dtype)
    rotation = axis_angle_to_matrix(axis_angle.to(dtype))
    translation = translation.to(dtype)
    if invert:
        rotation = rotation.transpose(1, 2)
        translation = -(rotation @ translation[:, :, None])[..., 0]  # R^T T(-t) = [R^T | -R^T t]
    top = torch.cat([rotation, translation[:, :, None]], dim=2)
    bottom = torch.tensor([0, 0, 0, 1], dtype=dtype, device=top.device).expand(top.shape[0], 1, 4)
    return torch.cat([top, bottom], dim=1)


def warp_with_pose(
    source: Tensor,
    depth: Tensor,
    intrinsics: Tensor,
    pose: Tensor,
    padding_mode: str = "border",
    eps: float = PROJECTION_EPS,
) -> tuple[Tensor, Tensor]:
    """Reconstruct the target view by sampling another view through the target's depth and a camera motion.

    For each target pixel (u, v), at integer coordinates as in :func:`warp_horizontal`, the point
    ``X = depth(u, v) K^-1 [u, v, 1]`` of the target camera is moved into the source camera by
    ``pose`` and projected with the same ``K``: ``[u', v'] = (K X')[:2] / (X'_z + eps)`` with
    ``X' = pose @ [X, 1]``, and ``source`` is sampled bilinearly at (u', v') (Monodepth2
    ``BackprojectDepth``, ``Project3D``, ``F.grid_sample(padding_mode="border")``; eps 1e-7 as
    there). The grid is normalised as ``(2 u' + 1) / W - 1`` with ``align_corners=False``: the
    same samples as Monodepth2's ``u' / (W - 1)`` normalisation under the ``align_corners=True``
    of the PyTorch 0.4 it was written for (its call names no ``align_corners``, so under today's
    default it samples half a pixel off; see the SPEC).

    A pure translation ``pose`` by (-baseline, 0, 0) (the source camera ``baseline`` to the right)
    is :func:`warp_horizontal` with ``source_view="right"`` and the disparity
    ``fx * baseline / depth``; (+baseline, 0, 0) is ``source_view="left"``.

    Occlusions and moving objects are not detected. Sampling runs in float32 or wider, as in
    :func:`warp_horizontal`.

    Args:
        source: (B, C, H, W) the source view (any float dtype).
        depth: (B, 1, H, W) the *target* view's depth, in the units of the pose's translation.
        intrinsics: (B, 4) fx, fy, cx, cy in pixels of these images (one K for both views).
        pose: (B, 4, 4) maps target-camera points to source-camera points
            (:func:`pose_from_parameters`; Monodepth2's ``cam_T_cam``; its stereo ``stereo_T``).
        padding_mode: ``grid_sample``'s fill for samples outside the source (``border``,
            ``zeros``, ``reflection``); those pixels are False in ``inside`` whatever the mode.
        eps: added to the projected depth before the division.

    Returns:
        ``(warped, inside)``: warped (B, C, H, W) in ``source``'s dtype; inside (B, 1, H, W) bool,
        True where the projected point lies in [0, W - 1] x [0, H - 1] (both bilinear neighbours
        real source pixels; with a tolerance of 1e-3 px, ``INSIDE_TOLERANCE_PX``, for the rounding
        of ``v z / z`` on the edge rows and columns) and in front of the source camera
        (X'_z > 0); False where it is NaN.
    """
    if source.ndim != 4:
        raise ValueError(f"warp_with_pose: source must be (B, C, H, W), got shape {tuple(source.shape)}")
    batch, _, height, width = source.shape
    if depth.shape != (batch, 1, height, width):
        raise ValueError(f"warp_with_pose: depth must be {(batch, 1, height, width)} (source's B, H, W), "
                         f"got {tuple(depth.shape)}")
    if intrinsics.shape != (batch, 4):
        raise ValueError(f"warp_with_pose: intrinsics must be ({batch}, 4) fx, fy, cx, cy, "
                         f"got {tuple(intrinsics.shape)}")
    if pose.shape != (batch, 4, 4):
        raise ValueError(f"warp_with_pose: pose must be ({batch}, 4, 4), got {tuple(pose.shape)}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"warp_with_pose: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    dtype = torch.promote_types(torch.promote_types(source.dtype, depth.dtype), torch.float32)
    dtype = torch.promote_types(torch.promote_types(dtype, intrinsics.dtype), pose.dtype)
    fx, fy, cx, cy = (value.to(dtype).view(batch, 1, 1, 1) for value in intrinsics.unbind(-1))
    z = depth.to(dtype)
    u = torch.arange(width, dtype=dtype, device=source.device).view(1, 1, 1, width)
    v = torch.arange(height, dtype=dtype, device=source.device).view(1, 1, height, 1)
    points = torch.cat([(u - cx) / fx * z, ((v - cy) / fy * z).expand_as(z), z], dim=1)  # (B, 3, H, W)
    pose = pose.to(dtype)
    moved = torch.einsum("bij,bjhw->bihw", pose[:, :3, :3], points) + pose[:, :3, 3, None, None]
    x_s, y_s, z_s = moved.unbind(1)
    # (K X')[:2] / (z + eps), as Project3D computes it (cx z, not cx, over z + eps).
    u_s = ((fx[:, 0] * x_s + cx[:, 0] * z_s) / (z_s + eps))[:, None]
    v_s = ((fy[:, 0] * y_s + cy[:, 0] * z_s) / (z_s + eps))[:, None]
    tol = INSIDE_TOLERANCE_PX
    inside = ((u_s >= -tol) & (u_s <= width - 1 + tol) & (v_s >= -tol) & (v_s <= height - 1 + tol)
              & (z_s[:, None] > 0))
    grid = torch.cat([(2 * u_s + 1) / width - 1, (2 * v_s + 1) / height - 1], dim=1).permute(0, 2, 3, 1)
    warped = F.grid_sample(source.to(dtype), grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return warped.to(source.dtype), inside


def translation_angle_deg(pose: Tensor, reference: Tensor) -> Tensor:
    """(B,) angle in degrees between the translations of two (B, 4, 4) camera motions: how far a
    predicted direction of travel is from the true one, blind to the translation's length (a
    monocular pose network's scale is arbitrary). 90 degrees for a zero translation."""
    a, b = pose[:, :3, 3].double(), reference[:, :3, 3].double()
    cosine = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-12)
    return torch.rad2deg(torch.arccos(cosine.clamp(-1, 1))).to(pose.dtype)
