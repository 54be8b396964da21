"""Depth-map operations every layer shares, written once: the KB crop and resizing a depth map in the
quantity that is interpolated (depth or inverse depth). Functional, torch only, no depthlab imports
(the bottom of the package: data, models, losses and evaluation all call these).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

# KB crop (Uhrig et al., the KITTI depth benchmark's size): a 352x1216 window at the bottom of the
# frame, centred horizontally (BTS pytorch/bts_dataloader.py, AdaBins, ZoeDepth).
KB_CROP = (352, 1216)  # (H, W)

Interpolation = Literal["half_pixel", "opencv", "align_corners", "nearest"]


def scale_intrinsics(k, sx: float, sy: float) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of an image resized by (sx, sy): with pixel centres at integer coordinates a
    point x maps to (x + 0.5) s - 0.5, so c' = (c + 0.5) s - 0.5 and f' = f s."""
    fx, fy, cx, cy = (float(v) for v in k)
    return fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5


def kb_crop_box(height: int, width: int) -> tuple[int, int]:
    """(top, left) of the KB crop in a height x width frame: the bottom 352 rows, the 1216 central
    columns (375x1242: (23, 13)). A frame smaller than 352x1216 is a ValueError."""
    if height < KB_CROP[0] or width < KB_CROP[1]:
        raise ValueError(f"the {KB_CROP[0]}x{KB_CROP[1]} KB crop needs a frame at least that large, got {height}x{width}")
    return height - KB_CROP[0], (width - KB_CROP[1]) // 2


def _opencv_taps(n_in: int, n_out: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Source indices (i0, i1) and the weight of i1 for each of ``n_out`` outputs, from float64
    coordinates (i + 0.5) n_in / n_out - 0.5 clamped to the edge pixels, as OpenCV computes them."""
    src = (torch.arange(n_out, dtype=torch.float64, device=device) + 0.5) * (n_in / n_out) - 0.5
    src = src.clamp(0, n_in - 1)
    i0 = src.floor().long()
    return i0, (i0 + 1).clamp_max(n_in - 1), src - i0


def _resize_opencv(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of (..., h, w) with half-pixel centres exactly as ``cv2.resize(x, (w, h))``
    (INTER_LINEAR): each source row interpolated horizontally, then two such rows blended, with
    OpenCV's float64 source coordinates (``F.interpolate`` forms them in float32: off by up to ~4e-5
    pixel at KITTI widths)."""
    y0, y1, wy = _opencv_taps(x.shape[-2], size[0], x.device)
    x0, x1, wx = _opencv_taps(x.shape[-1], size[1], x.device)
    wy, wx = wy.to(x.dtype)[:, None], wx.to(x.dtype)

    def along_rows(rows: Tensor) -> Tensor:
        return rows.index_select(-1, x0) * (1 - wx) + rows.index_select(-1, x1) * wx

    return along_rows(x.index_select(-2, y0)) * (1 - wy) + along_rows(x.index_select(-2, y1)) * wy


def resize_map(x: Tensor, size: tuple[int, int], interpolation: Interpolation = "half_pixel") -> Tensor:
    """(B, C, h, w) -> (B, C, H, W): ``half_pixel`` is ``F.interpolate(bilinear, align_corners=False)``,
    ``opencv`` the same points with OpenCV's float64 coordinates, ``align_corners``
    ``F.interpolate(bilinear, align_corners=True)``, ``nearest`` nearest. Always interpolates (no
    branch on the shape, so that ``torch.export`` keeps H and W dynamic)."""
    size = tuple(size)  # not int(): a symbolic size (torch.export) must stay symbolic
    if interpolation == "half_pixel":
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    if interpolation == "align_corners":
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    if interpolation == "opencv":
        return _resize_opencv(x, size)
    if interpolation == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    raise ValueError(f"interpolation must be half_pixel, opencv, align_corners or nearest, got {interpolation!r}")


def resize_depth(depth: Tensor, size: tuple[int, int], inverse: bool = False,
                 interpolation: Interpolation = "half_pixel",
                 inverse_depth: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """Resize a depth map (B, 1, h, w) metres to ``size``, interpolating depth or, with ``inverse``,
    inverse depth (1/m; as Monodepth2 resizes its disparity before inverting it). Between pixels the
    two differ: an arithmetic against a harmonic mean of the neighbours' depths.

    ``inverse_depth``: the network's own 1/m map, interpolated instead of ``1 / depth`` (a network
    that predicts inverse depth is resized in its own quantity). Returns (depth, inverse depth;
    None without ``inverse``). Zeros and round-off stay finite: both reciprocals are clamped at the
    dtype's smallest normal number (a no-op for positive depths).
    """
    if not inverse:
        return resize_map(depth, size, interpolation), None
    tiny = torch.finfo(depth.dtype).tiny
    source = inverse_depth if inverse_depth is not None else 1 / depth.clamp_min(tiny)
    resized = resize_map(source, size, interpolation).clamp_min(tiny)
    return 1 / resized, resized
