"""Counting every evaluation image exactly once under DDP.

Lightning's ``DistributedSampler`` (no shuffle for evaluation) lays the data set out as its
``n`` indices followed by repeats of the first ones up to a multiple of the world size W, and gives
rank r the positions r, r + W, r + 2W, ... of that list. Every rank then runs the same number of
batches (no collective waits on a rank that ran out), and a sample is a repeat exactly when its
position is >= n. depthlab keeps that sampler and gives the repeats zero weight.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler


def real_sample_mask(rank: int, world_size: int, dataset_size: int, start: int, batch_size: int, device=None) -> Tensor:
    """Bool (batch_size,): which of this rank's samples ``start .. start + batch_size - 1`` are not repeats."""
    position = rank + world_size * torch.arange(start, start + batch_size, device=device)
    return position < dataset_size


def loader_sampler(loader: object) -> DistributedSampler | None:
    """The DistributedSampler that feeds ``loader`` (a DataLoader), or None."""
    sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
    if sampler is None:
        sampler = getattr(loader, "sampler", None)
    return sampler if isinstance(sampler, DistributedSampler) else None
