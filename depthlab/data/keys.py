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

Video frames (monocular self-supervision, Monodepth2's M and MS training; Godard et al. 2019,
``nianticlabs/monodepth2`` ``datasets/mono_dataset.py``). A data module's ``frame_ids`` (default
``[0]``) names the frames of each sample: ``0`` the target frame (the keys above), a non-zero
integer k the k-th frame after it in the same video (before it when negative), ``"s"`` the stereo
view of the target (the ``_right`` keys above). A temporal neighbour carries the maps of
:data:`FRAME_MAPS` (its image only) under the key ``<name>`` + :func:`frame_suffix` (k):
``image_f-1``, ``image_f+1``, ``image_f+2``. These keys are per-view maps like the others
(:func:`sample_views`, :func:`is_spatial`, :func:`albumentations_targets`): one photometric draw and
one geometric draw for the whole set; a horizontal flip mirrors them in place.

With both (``[0, -1, 1, "s"]``, Monodepth2's MS) a sample also carries the right camera's frames,
``image_right_f-1`` ..., because a stereo flip swaps the views (``keys.STEREO_PAIRS``): the mirrored
right camera becomes the target, and its own frames must become ``image_f{k}`` (the temporal
frames always belong to the target's camera); the pose follows (see below).

- The target's ``intrinsics`` (fx, fy, cx, cy) hold for every frame (one camera).
- ``pose_f{k:+d}`` (4, 4) float32, where the data know it (procedural scenes): the rigid motion
  that maps a point in the TARGET camera's frame to the same point in frame k's camera frame
  (x right, y down, z forward, metres): ``X_k = P[:3, :3] X_0 + P[:3, 3]``. So projecting
  ``K (P X_0)`` with the target's depth finds where frame k sees the target's pixel (the warp
  of Monodepth2's photometric loss). A horizontal flip mirrors it (``P' = S P S``,
  ``S = diag(-1, 1, 1, 1)``), a zoom by s (``EigenScale``) divides its translation by s, an
  in-plane rotation R conjugates it (``R P R^T``); crops and resizes leave it as it is. A stereo
  flip (the right camera becomes the target) first moves it to the right camera,
  ``T(-b) P T(b)`` with ``T(b)`` the translation by ``baseline_m`` along x, then mirrors it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from depthlab.errors import ConfigError

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
_BY_NAME = {vk.name: vk for vk in VIEW_KEYS}

#: The per-view maps a temporal neighbour frame carries (Monodepth2 reads its colour image only).
FRAME_MAPS: tuple[str, ...] = ("image",)
STEREO_FRAME = "s"  # the frame id of the target's stereo view
POSE = "pose"  # pose_f{k:+d}: target camera -> frame k's camera, (4, 4)
_FRAME_VIEWS = {_BY_NAME[name].key(view): (_BY_NAME[name], view) for name in FRAME_MAPS for view in VIEWS}
_FRAME_KEY = re.compile(r"^(?P<name>[a-z_]+?)_f(?P<k>[+-][1-9][0-9]*)$")


def frame_suffix(k: int) -> str:
    """The key suffix of temporal frame ``k`` (non-zero): ``_f-1``, ``_f+1``, ``_f+2``."""
    if isinstance(k, bool) or not isinstance(k, int) or k == 0:
        raise ValueError(f"frame_suffix: a temporal frame id is a non-zero integer, got {k!r}")
    return f"_f{k:+d}"


def check_frame_ids(frame_ids: Any, key: str = "data.frame_ids") -> tuple[int | str, ...]:
    """``frame_ids`` of a data module as a tuple, or a one-line ConfigError naming ``key``: a list of
    distinct ids that contains 0 (the target), where each other id is a non-zero integer (a temporal
    neighbour) or ``"s"`` (the stereo view)."""
    ids = frame_ids if isinstance(frame_ids, (list, tuple)) else None
    if ids is None:
        raise ConfigError(f"{key}: expected a list such as [0, -1, 1] or [0, -1, 1, s], got {frame_ids!r}")
    for k in ids:
        if k != STEREO_FRAME and (isinstance(k, bool) or not isinstance(k, int)):
            raise ConfigError(f"{key}: {k!r} is neither an integer (a frame offset) nor 's' (the stereo view); "
                              f"got {list(ids)}")
    if 0 not in ids:
        raise ConfigError(f"{key}: must contain 0 (the target frame), got {list(ids)}")
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{key}: repeated frame id in {list(ids)}")
    return tuple(ids)


def temporal_ids(frame_ids: Iterable[int | str]) -> tuple[int, ...]:
    """The temporal neighbours among ``frame_ids`` (the non-zero integers), in their order."""
    return tuple(k for k in frame_ids if k != STEREO_FRAME and k != 0)


def frame_keys(frame_ids: Iterable[int | str], poses: bool = False, stereo: bool | None = None) -> frozenset[str]:
    """The keys the temporal neighbours of ``frame_ids`` add to a sample: ``image_f{k:+d}`` for
    each; ``image_right_f{k:+d}`` too in a stereo sample (``stereo``; by default: ``"s"`` is among
    the ids); ``pose_f{k:+d}`` when ``poses`` (a data set that knows its camera motion)."""
    frame_ids = list(frame_ids)
    stereo = STEREO_FRAME in frame_ids if stereo is None else stereo
    names = [_BY_NAME[name].key(view) for name in FRAME_MAPS for view in (VIEWS if stereo else ("",))]
    names += [POSE] * poses
    return frozenset(name + frame_suffix(k) for k in temporal_ids(frame_ids) for name in names)


def parse_frame_key(key: str) -> tuple[str, int] | None:
    """(map name, k) of a temporal frame's key (``image_f-1`` -> ``("image", -1)``,
    ``image_right_f+1`` -> ``("image_right", 1)``), else None."""
    match = _FRAME_KEY.match(key)
    return None if match is None else (match["name"], int(match["k"]))


def _frame_view(key: str) -> tuple[ViewKey, str] | None:
    """(its map, its view) of a temporal frame's map key, else None."""
    parsed = parse_frame_key(key)
    if parsed is None:
        return None
    return _FRAME_VIEWS.get(parsed[0])


def frame_stereo_pairs(keys: Iterable[str]) -> list[tuple[str, str]]:
    """(left, right) keys of the temporal frames' maps among ``keys`` (``image_f-1``,
    ``image_right_f-1``): what a stereo flip swaps besides :data:`STEREO_PAIRS`. A left frame
    without its right one is paired all the same (the flip reports the missing key)."""
    pairs = []
    for key in keys:
        found = _frame_view(key)
        if found is not None and found[1] == "":
            name, k = parse_frame_key(key)  # type: ignore[misc]
            pairs.append((key, name + RIGHT + frame_suffix(k)))
    return sorted(pairs)


def is_pose_key(key: str) -> bool:
    parsed = parse_frame_key(key)
    return parsed is not None and parsed[0] == POSE


def sample_views(sample: Iterable[str]) -> Iterator[tuple[str, ViewKey, str | None]]:
    """Every per-view map present among the keys of ``sample``: (its key, its :class:`ViewKey`, the key
    of its validity mask or None): both stereo views of :data:`VIEW_KEYS`, then the temporal frames."""
    present = set(sample)
    for vk in VIEW_KEYS:
        for view in VIEWS:
            if vk.key(view) in present:
                yield vk.key(view), vk, vk.valid_key(view)
    for key in sorted(present):
        found = _frame_view(key)
        if found is not None:
            yield key, found[0], None


def is_spatial(key: str) -> bool:
    """Whether ``key`` holds a (C, H, W) map of a view: :data:`SPATIAL_KEYS` or a temporal frame's map."""
    return key in SPATIAL_KEYS or _frame_view(key) is not None


def albumentations_targets(keys: Iterable[str]) -> dict[str, str]:
    """:data:`ALBUMENTATIONS_TARGETS` plus the temporal frames among ``keys`` (extra image targets)."""
    targets = dict(ALBUMENTATIONS_TARGETS)
    for key in keys:
        found = _frame_view(key)
        if found is not None:
            targets[key] = "image" if found[0].kind == "image" else "mask"
    return targets


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


def view_keys(names: Iterable[str], stereo: bool, frame_ids: Iterable[int | str] = (0,),
              poses: bool = False) -> frozenset[str]:
    """The sample keys that per-view maps ``names`` (e.g. ``["image", "depth"]``) produce: each
    map's key and validity mask, for the left view and, when ``stereo``, the right view too; with
    temporal neighbours in ``frame_ids``, their :func:`frame_keys` (the right camera's too when
    ``stereo``; ``poses``: with ``pose_f*``)."""
    names = list(names)
    by_name = _BY_NAME
    unknown = sorted(set(names) - set(by_name))
    if unknown:
        raise KeyError(f"view_keys: {', '.join(unknown)} not in VIEW_KEYS ({', '.join(by_name)})")
    views = VIEWS if stereo else ("",)
    return frozenset(
        key for name in names for view in views
        for key in (by_name[name].key(view), by_name[name].valid_key(view)) if key is not None
    ) | frame_keys(frame_ids, poses, stereo=stereo)


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

    Every per-view map (:func:`is_spatial`: images, depth-like maps and their validity masks,
    temporal frames' images, (B, C, H, W)) is cut (views into the input, no copy). The camera follows the window:
    ``intrinsics`` (B, 4) get cx - left, cy - top (pixel coordinates start at the window's corner),
    and ``crop_offset`` (B, 2) (top, left of the sample in its original frame) gets + (top, left),
    so that full-frame evaluation crops still land where they should. Every other key is returned
    as it is. Also works on one sample ((C, H, W) maps, (4,) intrinsics).
    """
    spatial = [key for key in batch if is_spatial(key)]
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
