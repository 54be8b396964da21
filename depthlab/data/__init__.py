"""Data modules. Every sample is a :class:`~depthlab.data.batch.DepthSample`.

The file-backed modules (NYU, KITTI) are imported on first use: they pull in albumentations, h5py
and OpenCV, which ``from depthlab.data.batch import DepthSample`` should not pay for.
"""

from __future__ import annotations

import importlib
from typing import Any

from depthlab.data.batch import DepthSample
from depthlab.data.synthetic import SyntheticDataModule

_LAZY = {
    "DataError": "depthlab.data.readers",
    "ImageFolderDataModule": "depthlab.data.images",
    "KITTIDataModule": "depthlab.data.kitti",
    "MixtureDataModule": "depthlab.data.mixture",
    "RGBDDataModule": "depthlab.data.rgbd",
    "KITTIDataset": "depthlab.data.kitti",
    "NYUDataModule": "depthlab.data.nyu",
    "NYUListDataset": "depthlab.data.nyu",
    "NYUMatDataset": "depthlab.data.nyu",
}

__all__ = ["DepthSample", "SyntheticDataModule", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'depthlab.data' has no attribute {name!r}")
