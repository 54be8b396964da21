"""The per-view keys of a depthlab sample, in one table, and the batch helpers that read it.

A rectified stereo sample carries each per-view map twice: ``<name>`` for the left view and
``<name>_right`` for the right view. :data:`VIEW_KEYS` lists every such map once; from it follow

- the albumentations targets of the augmentation (:data:`ALBUMENTATIONS_TARGETS`,
  ``depthlab.data.transforms``),
- the views that a stereo ``HorizontalFlip`` swaps (:data:`STEREO_PAIRS`),
- the NumPy -> tensor conversion with its validity masks (``depthlab.data.base.to_tensors``),
- what :func:`crop_batch` cuts and what a data module's ``provides`` lists (:func:`view_keys`).

Adding a map (say a confidence or a semantic layer) is one line in :data:`VIEW_KEYS`.

=========  ======  ============  ===============================================================
name       kind    validity      meaning
=========  ======  ============  ===============================================================
image      image   -             RGB: NumPy (H, W, 3) uint8 (or float in [0, 1]) -> (3, H, W) float32 in [0, 1]
depth      depth   valid         ground truth in metres, 0 = no measurement
hint       depth   hint_valid    Depth Hints' fused stereo depth (Watson et al. 2019), metres, 0 = none
=========  ======  ============  ===============================================================

Kinds:

- ``image``: an albumentations ``image`` target: resampled bilinearly, touched by photometric
  transforms (the same draw for both views).
- ``depth``: an albumentations ``mask`` target, i.e. a depth-like map in metres moved by depthlab's
  depth-aware geometric transforms exactly as ``depth`` (nearest neighbour, new borders 0, divided
  by ``EigenScale``'s s), untouched by photometric ones. As a tensor: (1, H, W) float32 with 0
  where the value is not finite or not > 0, plus its validity mask (1, H, W) bool = value > 0,
  recomputed after augmentation. The right view's mask is ``<validity>_right``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

RIGHT = "_right"  # suffix of the right view's keys
VIEWS = ("", RIGHT)  # left, right


@dataclass(frozen=True)
class ViewKey:
    """One per-view map: ``name`` (left view; the right view's key is ``name + "_right"``), its
    ``kind`` (``image`` or ``depth``, see the module docstring) and, for a depth-kind map, the key
    of its validity mask."""

    name: str
    kind: Literal["image", "depth"]
    valid: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("image", "depth"):
            raise ValueError(f"ViewKey {self.name!r}: kind must be 'image' or 'depth', got {self.kind!r}")
        if (self.kind == "depth") != (self.valid is not None):
            raise ValueError(f"ViewKey {self.name!r}: a depth-kind map has a validity key, an image has none")

    def key(self, view: str) -> str:
        """The sample key of this map in ``view`` (``""`` left, ``"_right"`` right)."""
        return self.name + view

    def valid_key(self, view: str) -> str | None:
        """The key of this map's validity mask in ``view`` (None for images)."""
        return None if self.valid is None else self.valid + view


VIEW_KEYS: tuple[ViewKey, ...] = (
    ViewKey("image", "image"),
    ViewKey("depth", "depth", valid="valid"),
    ViewKey("hint", "depth", valid="hint_valid"),
)

#: ``A.Compose(additional_targets=...)``: every per-view key but ``image`` (albumentations' own).
ALBUMENTATIONS_TARGETS: dict[str, str] = {
    vk.key(view): "image" if vk.kind == "image" else "mask"
    for vk in VIEW_KEYS for view in VIEWS if vk.key(view) != "image"
}
#: (left key, right key) of every per-view map: what a stereo horizontal flip swaps.
STEREO_PAIRS: tuple[tuple[str, str], ...] = tuple((vk.key(""), vk.key(RIGHT)) for vk in VIEW_KEYS)
#: Every key that holds an (C, H, W) map of a view, validity masks included.
SPATIAL_KEYS: frozenset[str] = frozenset(
    key for vk in VIEW_KEYS for view in VIEWS for key in (vk.key(view), vk.valid_key(view)) if key is not None
)


def view_keys(names: Iterable[str], stereo: bool) -> frozenset[str]:
    """The sample keys that per-view maps ``names`` (e.g. ``["image", "depth"]``) produce: each
    map's key and validity mask, for the left view and, when ``stereo``, the right view too."""
    by_name = {vk.name: vk for vk in VIEW_KEYS}
    unknown = sorted(set(names) - set(by_name))
    if unknown:
        raise KeyError(f"view_keys: {', '.join(unknown)} not in VIEW_KEYS ({', '.join(by_name)})")
    views = VIEWS if stereo else ("",)
    return frozenset(
        key for name in names for view in views
        for key in (by_name[name].key(view), by_name[name].valid_key(view)) if key is not None
    )


def complete_stereo_pairs(sample: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a NumPy ``sample``; if it is a stereo pair (has ``image_right``), every depth-kind
    map present in one view only gets an all-zero map (no value) in the other view, so that a
    stereo flip can swap it and every stereo sample of a data set carries the same keys."""
    data = dict(sample)
    if "image_right" in data:
        for vk in VIEW_KEYS:
            left, right = vk.key(""), vk.key(RIGHT)
            if vk.kind == "depth" and (left in data) != (right in data):
                present = data[left] if left in data else data[right]
                data[right if left in data else left] = np.zeros_like(present)
    return data


def crop_batch(batch: Mapping[str, Any], top: int, left: int, height: int, width: int) -> dict[str, Any]:
    """The window rows ``top:top + height``, columns ``left:left + width`` of a collated batch.

    Every per-view map (:data:`SPATIAL_KEYS`: images, depth-like maps and their validity masks,
    (B, C, H, W)) is cut (views into the input, no copy). The camera follows the window:
    ``intrinsics`` (B, 4) get cx - left, cy - top (pixel coordinates start at the window's corner),
    and ``crop_offset`` (B, 2) (top, left of the sample in its original frame) gets + (top, left),
    so that full-frame evaluation crops still land where they should. Every other key is returned
    as it is. Also works on one sample ((C, H, W) maps, (4,) intrinsics).
    """
    spatial = [key for key in batch if key in SPATIAL_KEYS]
    if not spatial:
        raise KeyError(f"crop_batch: the batch has no per-view map ({', '.join(sorted(SPATIAL_KEYS))})")
    full_h, full_w = batch[spatial[0]].shape[-2:]
    for key in spatial:
        if tuple(batch[key].shape[-2:]) != (full_h, full_w):
            raise ValueError(f"crop_batch: {key} is {tuple(batch[key].shape[-2:])}, {spatial[0]} is {(full_h, full_w)}")
    inside = 0 <= top and 0 <= left and height >= 1 and width >= 1
    if not (inside and top + height <= full_h and left + width <= full_w):
        raise ValueError(f"crop_batch: window top={top}, left={left}, height={height}, width={width} "
                         f"is not inside the {full_h}x{full_w} maps")
    out = dict(batch)
    for key in spatial:
        out[key] = batch[key][..., top:top + height, left:left + width]
    if "intrinsics" in batch:
        k = batch["intrinsics"]
        out["intrinsics"] = k - torch.tensor([0, 0, left, top], dtype=k.dtype, device=k.device)
    if "crop_offset" in batch:
        offset = batch["crop_offset"]
        out["crop_offset"] = offset + torch.tensor([top, left], dtype=offset.dtype, device=offset.device)
    return out


def select_samples(batch: Mapping[str, Any], index: Tensor | Sequence[int] | Sequence[bool] | int) -> dict[str, Any]:
    """The samples ``index`` of a collated batch: every tensor indexed along its leading (B) axis.

    ``index`` is a bool mask (B,) or integer positions (a single int keeps the axis: B' = 1).
    Values that are not tensors (or are 0-d) are returned as they are.
    """
    index = torch.as_tensor(index)
    if index.numel() == 0:
        index = index.long()  # torch.as_tensor([]) is float32: select nothing
    if index.ndim == 0:
        index = index.reshape(1)
    if index.ndim != 1 or index.dtype.is_floating_point or index.dtype.is_complex:
        raise ValueError(f"select_samples: index must be a 1-D bool mask or integer positions, got "
                         f"{index.dtype} of shape {tuple(index.shape)}")
    out = dict(batch)
    for key, value in batch.items():
        if not isinstance(value, Tensor) or value.ndim == 0:
            continue
        if index.dtype == torch.bool and index.shape[0] != value.shape[0]:
            raise ValueError(f"select_samples: the mask has {index.shape[0]} entries, "
                             f"{key} has {value.shape[0]} samples")
        out[key] = value[index.to(value.device)]
    return out
