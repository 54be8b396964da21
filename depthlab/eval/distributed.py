"""Counting every evaluation image exactly once under DDP.

Lightning's ``DistributedSampler`` (no shuffle for evaluation) lays the data set out as its
``n`` indices followed by repeats of the first ones up to a multiple of the world size W, and gives
rank r the positions r, r + W, r + 2W, ... of that list. Every rank then runs the same number of
batches (no collective waits on a rank that ran out), and a sample is a repeat exactly when its
position is >= n. depthlab keeps that sampler and gives the repeats zero weight.
"""

from __future__ import annotations

import warnings

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


class RepeatTracker:
    """Which samples of each evaluation batch are DistributedSampler repeats, per dataloader.

    Counts the samples this rank has seen per dataloader since :meth:`reset` (call it at the start of
    every validation/test epoch) and maps them to positions in the sampler's padded list.
    """

    def __init__(self) -> None:
        self._seen: dict[int, int] = {}

    def reset(self) -> None:
        self._seen = {}

    def real(self, loader: object, dataloader_idx: int, batch_size: int, world_size: int, device=None) -> Tensor | None:
        """Bool (batch_size,) of the real samples of this rank's next batch; None when all are real.

        ``loader`` feeds the batch; ``world_size`` is the trainer's. A loader without a
        DistributedSampler on several devices cannot be told apart: a warning says so (once).
        """
        start = self._seen.get(dataloader_idx, 0)
        self._seen[dataloader_idx] = start + batch_size
        sampler = loader_sampler(loader)
        if sampler is None or sampler.num_replicas == 1:
            if world_size > 1 and start == 0:
                warnings.warn(
                    f"evaluation data is not split by a DistributedSampler on {world_size} devices: depthlab cannot "
                    "tell repeated samples apart and the metrics may count images twice.",
                    stacklevel=2,
                )
            return None
        if sampler.drop_last and start == 0:
            warnings.warn("evaluation DistributedSampler has drop_last=True: some images are not evaluated.", stacklevel=2)
        real = real_sample_mask(sampler.rank, sampler.num_replicas, len(sampler.dataset), start, batch_size, device)
        return None if bool(real.all()) else real
