"""depthlab.pointcloud: back-projection by hand and the PLY file read back."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthlab.errors import ConfigError
from depthlab.pointcloud import backproject, depth_to_ply, intrinsics_from_fov

plyfile = pytest.importorskip("plyfile")


def test_ply_holds_exactly_the_backprojected_valid_pixels(tmp_path):
    depth = np.array([[2.0, 0.0, 4.0], [np.nan, 1.0, 8.0]], dtype=np.float32)
    rgb = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    fx, fy, cx, cy = 2.0, 4.0, 1.0, 0.5
    n = depth_to_ply(tmp_path / "a.ply", depth, (fx, fy, cx, cy), rgb)
    assert n == 4
    data = plyfile.PlyData.read(str(tmp_path / "a.ply"))
    assert data.elements[0].name == "vertex" and not data.text and data.byte_order == "<"
    v = data["vertex"].data
    # by hand, row-major over the valid pixels (u, v, z): (0,0,2), (2,0,4), (1,1,1), (2,1,8)
    expected = [((0 - cx) * 2 / fx, (0 - cy) * 2 / fy, 2), ((2 - cx) * 4 / fx, (0 - cy) * 4 / fy, 4),
                ((1 - cx) * 1 / fx, (1 - cy) * 1 / fy, 1), ((2 - cx) * 8 / fx, (1 - cy) * 8 / fy, 8)]
    got = np.stack([v["x"], v["y"], v["z"]], axis=1)
    assert got == pytest.approx(np.array(expected), abs=1e-6)
    assert v["red"].tolist() == [0, 6, 12, 15] and v["blue"].tolist() == [2, 8, 14, 17]


def test_intrinsics_from_fov():
    fx, fy, cx, cy = intrinsics_from_fov(4, 6, 90.0)
    assert fx == pytest.approx(3.0) and fy == fx and (cx, cy) == (2.5, 1.5)
    with pytest.raises(ConfigError, match="hfov_deg"):
        intrinsics_from_fov(4, 6, 180.0)
    points, valid = backproject(np.ones((4, 6)), (fx, fy, cx, cy))
    # the outermost pixel centres are half a pixel inside the 90 degree edges
    assert math.degrees(2 * math.atan(points[:, 0].max() + 0.5 / fx)) == pytest.approx(90.0)
    assert valid.all()
