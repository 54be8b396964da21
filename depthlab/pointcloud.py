"""Depth maps as point clouds: back-projection with a pinhole camera, and binary PLY files.

Camera frame: z forward (the depth), x right, y down, in metres. Pixel centres sit at integer
coordinates (pixel (u, v) is column u, row v; OpenCV's and KITTI's convention, the one depthlab's
``intrinsics`` use everywhere), so a pixel with depth z is the point

    x = (u - cx) z / fx,   y = (v - cy) z / fy,   z.

PLY files are written with ``plyfile`` (the optional extra ``ply``): binary little-endian, one vertex
per valid pixel with float32 ``x, y, z`` and uint8 ``red, green, blue``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from depthlab.errors import ConfigError


def intrinsics_from_fov(height: int, width: int, hfov_deg: float) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of a centred pinhole camera with square pixels and horizontal field of view
    ``hfov_deg`` across the ``width`` pixels' outer edges."""
    if not 0 < hfov_deg < 180:
        raise ConfigError(f"hfov_deg: expected a field of view in (0, 180) degrees, got {hfov_deg}")
    fx = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
    return fx, fx, (width - 1) / 2, (height - 1) / 2


def backproject(depth: np.ndarray, intrinsics: tuple[float, float, float, float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points (N, 3) float32 of the valid pixels (finite depth > 0) of ``depth`` (H, W) metres,
    and the (H, W) bool mask of those pixels (row-major order, as the points)."""
    fx, fy, cx, cy = (float(v) for v in np.asarray(intrinsics, dtype=np.float64).ravel())
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    v, u = np.nonzero(valid)
    z = depth[v, u]
    points = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=1)
    return points.astype(np.float32), valid


def write_ply(path: str | Path, points: np.ndarray, colors: np.ndarray | None = None) -> Path:
    """A binary PLY of ``points`` (N, 3) with optional ``colors`` (N, 3) uint8 RGB."""
    try:
        from plyfile import PlyData, PlyElement
    except ImportError:
        raise ConfigError("writing point clouds needs plyfile: pip install 'depthlab[ply]'") from None
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertices = np.empty(len(points), dtype=fields)
    for i, axis in enumerate("xyz"):
        vertices[axis] = points[:, i]
    if colors is not None:
        for i, channel in enumerate(("red", "green", "blue")):
            vertices[channel] = colors[:, i]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(vertices, "vertex")], byte_order="<").write(str(path))
    return path


def depth_to_ply(path: str | Path, depth: np.ndarray, intrinsics, rgb: np.ndarray | None = None) -> int:
    """Back-project ``depth`` (H, W) with ``intrinsics`` and write it, coloured by ``rgb`` (H, W, 3)
    uint8 when given; returns the number of points."""
    points, valid = backproject(depth, intrinsics)
    write_ply(path, points, None if rgb is None else np.asarray(rgb, dtype=np.uint8)[valid])
    return len(points)
