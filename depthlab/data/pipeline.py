"""The one sample pipeline of every depthlab data set: ``load -> augment -> to_tensors``.

``load(index)`` returns the raw sample as NumPy arrays (images (H, W, 3), uint8 or float in [0, 1];
depth-kind maps (H, W) float32 metres, 0 = no value; ``intrinsics``, ``baseline_m``); the split's
:class:`~depthlab.data.transforms.DepthAugment`, if any, moves it; :func:`to_tensors` makes the
:class:`~depthlab.data.batch.DepthSample` and recomputes every validity mask from the final values.
File data sets (KITTI, NYU) and the procedural one (synthetic) differ only in ``load``.

Augmentation randomness: by default each DataLoader worker draws from its own stream (seeded from
the worker's torch seed); a data set whose samples must be a pure function of their index (the
synthetic one) returns a per-sample seed from :meth:`SampleDataset.augment_seed`.

Only NumPy and torch here (no OpenCV, albumentations or Lightning), so the procedural data set does
not pay for them until it augments.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from depthlab.data.batch import DepthSample
from depthlab.data.keys import RIGHT, complete_stereo_pairs, is_pose_key, parse_frame_key, sample_views

if TYPE_CHECKING:
    from depthlab.data.transforms import DepthAugment


def to_tensors(sample: dict[str, Any]) -> DepthSample:
    """NumPy sample (HWC images, HW float32 depth-like maps) -> :class:`DepthSample` (CHW tensors).

    Per-view maps follow ``keys.VIEW_KEYS`` (and the temporal frames' ``image_f{k:+d}``,
    ``keys.sample_views``): images become (3, H, W) float32 in [0, 1] (uint8 ones
    divided by 255); every depth-kind map (1, H, W) float32 with 0 where it is not finite or not > 0,
    and its validity mask (``valid``, ``hint_valid``, ...) is recomputed from the final values.
    Relative poses ``pose_f{k:+d}`` become (4, 4) float32.
    """
    out: dict[str, Any] = {}
    for key, vk, valid_key in sample_views(sample):
        if vk.kind == "image":
            image = np.ascontiguousarray(sample[key])
            scale = 255.0 if image.dtype == np.uint8 else 1.0
            out[key] = torch.from_numpy(image).permute(2, 0, 1).float().div_(scale)
        else:
            values = np.asarray(sample[key], dtype=np.float32)
            valid = np.isfinite(values) & (values > 0)
            out[key] = torch.from_numpy(np.where(valid, values, np.float32(0)))[None]
            out[valid_key] = torch.from_numpy(valid)[None]
    for key in sample:
        if is_pose_key(key):  # pose_f{k:+d}: (4, 4) float32, target camera -> frame k's camera
            out[key] = torch.as_tensor(np.asarray(sample[key], dtype=np.float32).reshape(4, 4))
    if "intrinsics" in sample:
        out["intrinsics"] = torch.as_tensor(np.asarray(sample["intrinsics"], dtype=np.float32))
    if "baseline_m" in sample:
        out["baseline_m"] = torch.tensor(float(sample["baseline_m"]), dtype=torch.float32)
    for key in ("crop_offset", "full_size", "original_size", "index"):
        if key in sample:
            out[key] = torch.as_tensor(np.asarray(sample[key], dtype=np.int64))
    if "name" in sample:  # a user's image file (depthlab predict): names its outputs
        out["name"] = str(sample["name"])
    return DepthSample(**out)


def other_view(key: str) -> str | None:
    """The same per-view map in the other camera of a stereo pair (``image`` <-> ``image_right``,
    ``valid`` <-> ``valid_right``, ``image_f-1`` <-> ``image_right_f-1``); None for a key that has no
    view (``intrinsics``, ``pose_f-1``)."""
    if is_pose_key(key):
        return None
    parsed = parse_frame_key(key)
    name, suffix = (key, "") if parsed is None else (parsed[0], key[len(parsed[0]):])
    other = name[: -len(RIGHT)] if name.endswith(RIGHT) else name + RIGHT
    return other + suffix


class SampleDataset(Dataset):
    """A split of a data set: subclasses implement ``__len__`` and :meth:`load` (and :meth:`source`).

    ``required``: the batch keys some consumer reads (the objective, the evaluation protocol; set by
    :meth:`depthlab.data.loading.SplitDataModule.require`), or None (default: everything the data set
    has). With a set, a sample carries only the per-view maps (``keys.sample_views``: images,
    depth-like maps, video frames) named in it, each with its validity mask; every other key
    (``intrinsics``, ``baseline_m``, ``index``, poses, crop offsets) comes as before. A ``load`` may
    skip the work of a map that :meth:`wants` says nobody reads (the procedural data do not ray cast
    the right camera; file data sets do not read its files); the maps that do come are the same
    values as without the restriction.
    """

    required: frozenset[str] | None = None

    def __init__(self, augment: DepthAugment | None = None) -> None:
        self.augment = augment

    def wants(self, key: str) -> bool:
        """Whether :meth:`load` must produce per-view map ``key`` (``image_right``, ``hint``,
        ``image_f-1``): it, or its validity mask, is required, or there is no restriction. Under an
        augmentation that swaps a stereo pair's views (a stereo ``HorizontalFlip``) the other view's
        map may become this one, so a map is wanted when either view of it is required."""
        if self.required is None:
            return True
        other = other_view(key) if self.augment is not None and self.augment.swaps_views else None
        return self._required_map(key) or (other is not None and self._required_map(other))

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> dict[str, Any]:
        """The raw sample as NumPy arrays (before augmentation); raises ``DataError`` for bad data."""
        raise NotImplementedError

    def source(self, index: int) -> str:
        """Where sample ``index`` comes from, as errors name it (``list.txt:LINENO``)."""
        raise NotImplementedError

    def augment_seed(self, index: int) -> int | None:
        """The seed of sample ``index``'s augmentation draw; None: the worker's own stream."""
        return None

    def source_files(self, index: int) -> dict[str, Path]:
        """The files the images and depth maps of ``load(index)`` were decoded from (sample key ->
        file), where the value is that file's pixels as they are (no crop, flip or resize in ``load``).
        ``depthlab data pack`` stores such a file's own bytes (it checks that they decode to the same
        values); {}: none."""
        return {}

    def __getitem__(self, index: int) -> DepthSample:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        keep = None if self.required is None else self._required_map
        return finish_sample(self.load(index), self.augment, self.augment_seed(index), index, keep)

    def _required_map(self, key: str) -> bool:
        """Whether per-view map ``key`` or its validity mask is among :attr:`required`."""
        assert self.required is not None
        return key in self.required or any(v in self.required for _, _, v in sample_views([key]) if v is not None)


def finish_sample(raw: dict[str, Any], augment: DepthAugment | None, seed: int | None, index: int,
                  keep: Callable[[str], bool] | None = None) -> DepthSample:
    """A raw sample (what ``load`` returns) through the rest of the pipeline: stereo pairs completed,
    ``augment`` (drawn from ``seed``, or the worker's stream when None), ``index`` set, per-view maps
    that ``keep`` refuses dropped (maps loaded for a flip's swap, or by a load that ignores
    ``wants()``), tensors. Every data set's ``__getitem__`` ends here, and so does a sample read back
    from a pack (:mod:`depthlab.data.streaming`): the same raw sample gives the same tensors."""
    sample = complete_stereo_pairs(raw)
    if augment is not None:
        sample = augment(sample, seed=seed)
    sample["index"] = index
    if keep is not None:
        for key, _, _ in list(sample_views(sample)):
            if not keep(key):
                del sample[key]
    return to_tensors(sample)
