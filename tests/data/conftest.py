"""Fixtures: tiny data trees in the published formats (builders in data_trees.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_trees import KittiTree, NyuList, NyuMat, build_kitti, build_nyu_list, build_nyu_mat


@pytest.fixture
def kitti_tree(tmp_path: Path) -> KittiTree:
    return build_kitti(tmp_path / "kitti")


@pytest.fixture
def nyu_mat(tmp_path: Path) -> NyuMat:
    return build_nyu_mat(tmp_path)


@pytest.fixture
def nyu_list(tmp_path: Path) -> NyuList:
    return build_nyu_list(tmp_path)
