"""Data modules. Every sample is a :class:`~depthlab.data.batch.DepthSample`."""

from depthlab.data.batch import DepthSample
from depthlab.data.synthetic import SyntheticDataModule

__all__ = ["DepthSample", "SyntheticDataModule"]
