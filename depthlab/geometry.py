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


def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Per-pixel structural similarity of two images (B, C, H, W) in [0, 1], Monodepth2's form.

    Local means, biased variances and covariance over 3x3 windows (average pooling after a
    reflection padding of 1), C1 = 0.01^2, C2 = 0.03^2::

        SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))

    Returns (B, C, H, W); 1 where the two images are identical.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim: expected two (B, C, H, W) images of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    pad = "reflect" if min(x.shape[-2:]) > 1 else "replicate"  # reflection needs 2 pixels per side
    x, y = F.pad(x, (1, 1, 1, 1), mode=pad), F.pad(y, (1, 1, 1, 1), mode=pad)
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x * mu_x
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y * mu_y
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    denominator = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return numerator / denominator


def reprojection_error(pred: Tensor, target: Tensor, alpha: float = REPROJECTION_ALPHA) -> Tensor:
    """Per-pixel photometric error of a reconstructed view, (B, C, H, W) each -> (B, 1, H, W).

    ``alpha * clamp((1 - SSIM) / 2, 0, 1) + (1 - alpha) * |pred - target|``, averaged over the
    channels (Monodepth2 ``compute_reprojection_loss``; alpha 0.85).
    """
    l1 = (pred - target).abs().mean(1, keepdim=True)
    if alpha == 0:
        return l1
    structure = ((1 - ssim(pred, target)) / 2).clamp(0, 1).mean(1, keepdim=True)
    return alpha * structure + (1 - alpha) * l1
