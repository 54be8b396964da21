"""Training on several data sets at once, with per-member sampling weights.

    data:
      class_path: depthlab.data.MixtureDataModule
      init_args:
        members:
          rooms: {class_path: depthlab.data.SyntheticDataModule, init_args: {...}}
          mine: {class_path: depthlab.data.RGBDDataModule, init_args: {train: my_data/, ...}}
        weights: {rooms: 1.0, mine: 3.0}
        size: [96, 128]

Training: each sample is drawn from member k with probability w_k / sum(w) (``weights``; equal
without them), then uniformly without replacement inside that member (its own order is reshuffled
whenever it is used up). An epoch is ``epoch_size`` samples (default: the sum of the members'
training sizes). The order is a pure function of (seed, epoch), split across devices as
``DistributedSampler`` splits a permutation, and enterable mid-epoch, so a run resumed from a
checkpoint continues exactly (:class:`MixtureSampler`). The realised shares of the first epoch are
logged when training starts. Every member keeps its own transforms and depth units; a training
sample is resized to ``size`` (image bilinear, depth nearest, intrinsics rescaled) when its own size
differs, and carries only the keys every member provides.

Validation and test: one DataLoader per member (the member's own split, batch size and workers),
each scored under the member's own ``eval_protocol`` when it has one, else the model's; the module
logs ``val/<member>/<metric>`` and the mean over members as ``val/<metric>``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from depthlab.data.keys import sample_views
from depthlab.data.loading import ResumableSampler, Split, SplitDataModule
from depthlab.depth_ops import scale_intrinsics
from depthlab.errors import ConfigError

# Keys that place a sample in a larger frame (KITTI's evaluation windows): meaningless after a resize.
_FRAME_KEYS = frozenset({"crop_offset", "full_size"})


def resize_sample(sample: Mapping[str, Any], size: tuple[int, int]) -> dict[str, Any]:
    """One tensor sample at ``size`` (H, W): images bilinear (antialiased when shrinking), depth-kind
    maps nearest (a depth value is never blended), validity masks recomputed as depth > 0, and
    ``intrinsics`` rescaled with pixel centres at integers (c' = (c + 0.5) s - 0.5)."""
    height, width = sample["image"].shape[-2:]
    if (height, width) == tuple(size):
        return dict(sample)
    sy, sx = size[0] / height, size[1] / width
    out = dict(sample)
    for key, vk, valid_key in sample_views(sample):
        value = sample[key][None]
        if vk.kind == "image":
            out[key] = F.interpolate(value, size=tuple(size), mode="bilinear", align_corners=False,
                                     antialias=sy < 1 or sx < 1)[0]
        else:
            depth = F.interpolate(value, size=tuple(size), mode="nearest-exact")[0]
            out[key] = depth
            out[valid_key] = depth > 0
    if "intrinsics" in sample:
        out["intrinsics"] = torch.tensor(scale_intrinsics(sample["intrinsics"].tolist(), sx, sy),
                                         dtype=sample["intrinsics"].dtype)
    return out


class MixtureDataset(Dataset):
    """The members' training sets end to end (index i of member k is ``offsets[k] + i``), each sample
    cut to ``keys`` and resized to ``size``; ``index`` is the position in this concatenation."""

    def __init__(self, datasets: Mapping[str, Dataset], keys: frozenset[str], size: tuple[int, int] | None) -> None:
        self.names = list(datasets)
        self.datasets = list(datasets.values())
        self.lengths = [len(d) for d in self.datasets]  # type: ignore[arg-type]
        self.offsets = [0, *itertools.accumulate(self.lengths)][:-1]
        self.keys, self.size = keys, size

    def __len__(self) -> int:
        return sum(self.lengths)

    def locate(self, index: int) -> tuple[int, int]:
        """(member, index in the member) of a concatenated index."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        k = bisect.bisect_right(self.offsets, index) - 1
        return k, index - self.offsets[k]

    def __getitem__(self, index: int) -> dict[str, Any]:
        k, local = self.locate(index)
        sample = self.datasets[k][local]
        if self.size is not None:
            sample = resize_sample(sample, self.size)
        out = {key: value for key, value in sample.items() if key in self.keys}
        out["index"] = torch.tensor(index, dtype=torch.int64)
        return out


class MixtureSampler(ResumableSampler):
    """The mixture's training order (see the module docstring): ``epoch_size`` draws a member by its
    weight, then the member's next sample in its own reshuffled order; a pure function of
    (seed, epoch), shared across devices and enterable mid-epoch like :class:`ResumableSampler`."""

    def __init__(self, dataset: MixtureDataset, weights: list[float], epoch_size: int, seed: int = 0) -> None:
        super().__init__(dataset, seed=seed)
        self.weights = torch.tensor(weights, dtype=torch.float64)
        self.lengths = dataset.lengths
        self.offsets = dataset.offsets
        self.num_samples = math.ceil(epoch_size / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def _draws(self, epoch: int) -> tuple[list[int], list[int]]:
        """(member of each draw, concatenated index of each draw) of ``epoch``, ``total_size`` of each."""
        g = torch.Generator().manual_seed(self.seed + epoch)
        members = torch.multinomial(self.weights, self.total_size, replacement=True, generator=g).tolist()
        queues: list[list[int]] = [[] for _ in self.lengths]
        out = []
        for k in members:
            if not queues[k]:
                queues[k] = torch.randperm(self.lengths[k], generator=g).tolist()[::-1]
            out.append(self.offsets[k] + queues[k].pop())
        return members, out

    def order(self, epoch: int) -> list[int]:
        """Every device's indices of ``epoch`` (``total_size`` of them, before the split across devices)."""
        return self._draws(epoch)[1]

    def __iter__(self) -> Iterator[int]:
        mine = self.order(self.epoch)[self.rank:self.total_size:self.num_replicas]
        return itertools.islice(iter(mine), self.start, None)

    def shares(self, epoch: int = 0) -> list[float]:
        """The fraction of ``epoch``'s samples drawn from each member."""
        counts = Counter(self._draws(epoch)[0])
        return [counts[k] / self.total_size for k in range(len(self.lengths))]


class MixtureDataModule(SplitDataModule):
    """Several depthlab data modules as one (see the module docstring).

    Args:
        members: ``{name: data module}``: any of depthlab's split data modules (NYU, KITTI,
            synthetic, own RGB-D data, a mixture), each with its own settings.
        weights: ``{name: weight}`` for every member (normalised); null: equal weights.
        epoch_size: training samples per epoch; null: the sum of the members' training sizes.
        size: ``[H, W]`` of every training sample (each is resized when its own size differs);
            null: the members must already yield one size.
        batch_size: training batch size (validation and test use each member's own loaders).
        num_workers: training DataLoader workers.
    """

    def __init__(
        self,
        members: dict[str, SplitDataModule],
        weights: dict[str, float] | None = None,
        epoch_size: int | None = None,
        size: tuple[int, int] | None = None,
        batch_size: int = 8,
        num_workers: int = 4,
    ) -> None:
        super().__init__()
        if not members:
            raise ConfigError("data.members: give at least one member data module {name: {class_path: ..., init_args: ...}}")
        for name, member in members.items():
            if not isinstance(member, SplitDataModule):
                raise ConfigError(f"data.members.{name}: {type(member).__name__} has no train/val/test splits "
                                  "(a mixture takes depthlab's split data modules)")
            if "/" in name:
                raise ConfigError(f"data.members: the name {name!r} may not contain '/' (it names metric keys)")
        weights = {name: 1.0 for name in members} if weights is None else dict(weights)
        if set(weights) != set(members):
            missing, extra = sorted(set(members) - set(weights)), sorted(set(weights) - set(members))
            raise ConfigError(f"data.weights: give a weight for every member and no other (missing: {missing or '-'}, "
                              f"unknown: {extra or '-'})")
        if any(not (math.isfinite(w) and w >= 0) for w in weights.values()) or sum(weights.values()) <= 0:
            raise ConfigError(f"data.weights: weights must be finite, >= 0 and not all 0, got {weights}")
        if epoch_size is not None and epoch_size < 1:
            raise ConfigError(f"data.epoch_size: expected a number of samples >= 1, got {epoch_size}")
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ConfigError(f"data.size: expected [height, width] of positive pixels, got {list(size)}")
        if batch_size < 1:
            raise ConfigError(f"data.batch_size: must be >= 1, got {batch_size}")
        self.members = dict(members)
        self.weights = weights
        self.epoch_size = epoch_size
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.batch_size = self.eval_batch_size = batch_size
        self.num_workers = num_workers
        self._train: MixtureDataset | None = None

    @property
    def member_names(self) -> list[str]:
        return list(self.members)

    @property
    def provides(self) -> frozenset[str]:
        """The keys of the training batches: those every member provides (frame keys left out)."""
        common = frozenset.intersection(*(m.provides for m in self.members.values()))
        return common - _FRAME_KEYS

    def eval_protocols(self) -> dict[str, Any]:
        """``{member: its data module's eval_protocol (None: the model's)}``, in loader order."""
        return {name: getattr(m, "eval_protocol", None) for name, m in self.members.items()}

    def setup(self, stage: str | None = None) -> None:
        for member in self.members.values():
            member.setup(stage)

    def dataset(self, split: Split) -> Dataset:
        if split != "train":
            raise ValueError("MixtureDataModule: validation and test run one loader per member")
        if self._train is None:
            self._train = MixtureDataset({n: m.dataset("train") for n, m in self.members.items()}, self.provides,
                                         self.size)
        return self._train

    def require(self, keys: Iterable[str] | None, split: Split | None = None) -> None:
        """As :meth:`SplitDataModule.require`, for the mixture's training set and every member's loaders."""
        super().require(keys, split)
        for member in self.members.values():
            member.require(keys, split)

    def restrict(self, dataset: Dataset, split: Split) -> Dataset:
        if isinstance(dataset, MixtureDataset):  # each member's training set, as the member restricts it
            for name, member_set in zip(dataset.names, dataset.datasets):
                self.members[name].restrict(member_set, split)
            return dataset
        return super().restrict(dataset, split)

    def training_sampler(self, dataset: Dataset, seed: int) -> ResumableSampler:
        assert isinstance(dataset, MixtureDataset)
        sampler = MixtureSampler(dataset, [self.weights[n] for n in dataset.names],
                                 self.epoch_size or len(dataset), seed)
        total = sum(self.weights.values())
        rank_zero_info("mixture: {} training samples per epoch; members (requested share -> drawn in epoch 0): {}".format(
            sampler.total_size, ", ".join(f"{n} {self.weights[n] / total:.3f} -> {s:.3f} (of {len(d)})" for n, s, d in
                                          zip(dataset.names, sampler.shares(0), dataset.datasets))))
        return sampler

    def val_dataloader(self) -> list[DataLoader]:
        return [m.val_dataloader() for m in self.members.values()]

    def test_dataloader(self) -> list[DataLoader]:
        return [m.test_dataloader() for m in self.members.values()]

    def predict_dataloader(self) -> list[DataLoader]:
        return [m.predict_dataloader() for m in self.members.values()]
