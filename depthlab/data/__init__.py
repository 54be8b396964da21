"""Data modules. Every sample is a :class:`~depthlab.data.batch.DepthSample`.

Every data module is imported on first use (``depthlab.data.X`` resolves it): the file-backed ones
pull in albumentations, h5py and OpenCV, the synthetic one the renderer, and ``from
depthlab.data.batch import DepthSample`` pays for none of them (no import side effect either).
"""

from __future__ import annotations

import importlib
from typing import Any

from depthlab.data.batch import DepthSample

_LAZY = {
    "DataError": "depthlab.errors",
    "Problem": "depthlab.errors",
    "ImageFolderDataModule": "depthlab.data.images",
    "KITTIDataModule": "depthlab.data.kitti",
    "MixtureDataModule": "depthlab.data.mixture",
    "RGBDDataModule": "depthlab.data.rgbd",
    "StreamingDataModule": "depthlab.data.streaming",
    "KITTIDataset": "depthlab.data.kitti",
    "NYUDataModule": "depthlab.data.nyu",
    "NYUListDataset": "depthlab.data.nyu",
    "NYUMatDataset": "depthlab.data.nyu",
    "SyntheticDataModule": "depthlab.data.synthetic",
}

__all__ = ["DepthSample", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'depthlab.data' has no attribute {name!r}")
