"""Augmentation that keeps depth right: one albumentations ``A.Compose`` built from YAML.

A sample enters as NumPy arrays: ``image`` (H, W, 3) uint8 RGB, ``depth`` (H, W) float32 metres with
0 = no measurement, optionally the other per-view maps of ``depthlab.data.keys.VIEW_KEYS`` (``hint``,
and ``<name>_right`` for the other view of a rectified stereo pair), ``intrinsics`` (fx, fy, cx, cy)
and ``baseline_m``. Every depth-kind map of that table (``depth``, ``hint``, ...) is treated exactly
as ``depth`` below. Rules the pipeline enforces:

- Geometric transforms move every depth map with nearest-neighbour sampling and fill new borders
  with 0, so a depth value is never blended with another or with "no measurement"; the validity
  mask is recomputed afterwards as ``depth > 0``. Only depthlab's depth-aware geometric transforms
  are accepted (:data:`GEOMETRIC`); they also update ``intrinsics`` (and ``baseline_m``).
- Photometric transforms (any albumentations ``ImageOnlyTransform``: brightness, contrast, gamma,
  hue, and :class:`ChannelScale`) touch the images only, with the same draw for both views.
- :class:`HorizontalFlip` of a stereo pair also swaps the views (the mirrored right view is the new
  left view) and every per-view map (``keys.STEREO_PAIRS``); in a sample with ``image_right`` a
  depth-kind map present for one view only gets zeros for the other (no value there) so that the
  swap is defined.
- :class:`EigenScale` resizes by s and divides depth by s (Eigen et al. 2014, section 3.3).
- Video frames (``image_f{k:+d}``, ``depthlab.data.keys``) are extra image targets: the same
  geometric and photometric draw as the target (Monodepth2: one colour jitter and one flip per
  sample), mirrored in place; a stereo flip swaps them with the right camera's (``image_right_f*``),
  as it swaps the target's views. Relative poses ``pose_f{k:+d}`` follow the camera:
  mirrored by a flip, translation divided by EigenScale's s, conjugated by a rotation.
- :class:`Rotate` masks the border it brings in (depth 0 there).

Mean/std normalisation is *not* done here: images stay in [0, 1] and every network normalises with
its timm encoder's pretrained mean/std (``depthlab.models.encoders.encoder_mean_std``), so the
statistics always match the encoder actually built.

Pixel convention for ``intrinsics``: pixel centres at integer coordinates (OpenCV, KITTI P_rect).

YAML form (a list; ``name`` is a depthlab transform or any albumentations class, the rest its
arguments)::

    train_transforms:
      - {name: EigenScale, scale_range: [1.0, 1.5], p: 0.5}
      - {name: RandomCrop, height: 352, width: 704}
      - {name: HorizontalFlip, p: 0.5}
      - {name: RandomBrightnessContrast, brightness_limit: 0.2, contrast_limit: 0.2}
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

# albumentations asks PyPI for a newer version on import (a network call in every worker): not here.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from albumentations.core.transforms_interface import ImageOnlyTransform  # noqa: E402

from depthlab.data.keys import (  # noqa: E402
    ALBUMENTATIONS_TARGETS, STEREO_PAIRS, albumentations_targets, complete_stereo_pairs, frame_stereo_pairs,
    is_pose_key,
)
from depthlab.depth_ops import scale_intrinsics  # noqa: E402
from depthlab.errors import ConfigError  # noqa: E402

# albumentations target types of the sample keys; every "mask" target is a depth-like map in metres.
TARGETS = ALBUMENTATIONS_TARGETS
# Nearest-neighbour with pixel centres at +0.5 (cv2.INTER_NEAREST is shifted by half a pixel).
DEPTH_INTERPOLATION = cv2.INTER_NEAREST_EXACT


def _camera(data: dict[str, Any]) -> np.ndarray | None:
    k = data.get("intrinsics")
    return None if k is None else np.array(k, dtype=np.float64)  # a copy: inputs stay untouched


def _shift_camera(data: dict[str, Any], dx: float, dy: float) -> None:
    k = _camera(data)
    if k is not None:
        k[2] += dx
        k[3] += dy
        data["intrinsics"] = k


def _scale_camera(data: dict[str, Any], sx: float, sy: float) -> None:
    """Resize by (sx, sy): with pixel centres at integers, x' = (x + 0.5) sx - 0.5."""
    k = _camera(data)
    if k is not None:
        data["intrinsics"] = np.array(scale_intrinsics(k, sx, sy))


def _conjugate_poses(data: dict[str, Any], change: np.ndarray) -> None:
    """The new cameras see X' = M X (``change``: M, (3, 3) rotation or (4, 4) rigid motion): every
    ``pose_f*`` (target -> frame k) becomes M P M^-1."""
    m = np.eye(4)
    m[: change.shape[0], : change.shape[1]] = change
    inverse = np.linalg.inv(m)
    for key in [k for k in data if is_pose_key(k)]:
        data[key] = (m @ np.asarray(data[key], dtype=np.float64) @ inverse).astype(np.float32)


def _scale_poses(data: dict[str, Any], scale: float) -> None:
    """A scene shrunk by 1/scale (EigenScale): every ``pose_f*`` translation divided by scale."""
    for key in [k for k in data if is_pose_key(k)]:
        pose = np.array(data[key], dtype=np.float64)
        pose[:3, 3] /= scale
        data[key] = pose.astype(np.float32)


def _reject(name: str, kwargs: dict[str, Any], key: str, allowed: Sequence[Any], why: str) -> None:
    if key in kwargs and kwargs[key] not in allowed:
        raise ConfigError(f"transform {name}: {key}={kwargs[key]!r} is not allowed ({why})")


def _constant_border(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    _reject(name, kwargs, "border_mode", [cv2.BORDER_CONSTANT], "reflected or replicated depth is not a measurement")
    _reject(name, kwargs, "fill_mask", [0, 0.0], "new depth pixels must be 0, no measurement")
    return {**kwargs, "border_mode": cv2.BORDER_CONSTANT, "fill_mask": 0}


def _nearest_masks(name: str, kwargs: dict[str, Any], default: int) -> dict[str, Any]:
    nearest = [cv2.INTER_NEAREST, cv2.INTER_NEAREST_EXACT]
    _reject(name, kwargs, "mask_interpolation", nearest, "depth must not be interpolated across objects or holes")
    return {"mask_interpolation": default, **kwargs}


class HorizontalFlip(A.HorizontalFlip):
    """Mirror left-right; a stereo pair's views (and all their per-view maps) are swapped as well.

    Mirroring a rectified pair turns the right view into a left view: new left = flip(old right),
    new right = flip(old left), with the same positive baseline. cx becomes W - 1 - cx. Temporal
    frames (``image_f{k:+d}``) are mirrored, swapped with the right camera's (``image_right_f*``) in
    a stereo sample, and their poses mirrored: P' = S P S with S = diag(-1, 1, 1) (x -> -x in both
    cameras), after moving them to the right camera in a stereo sample (``depthlab.data.keys``).
    """

    def apply_with_params(self, params: dict[str, Any], *args: Any, **data: Any) -> dict[str, Any]:
        out = super().apply_with_params(params, *args, **data)
        width = params["shape"][1]
        k = _camera(out)
        if k is not None:
            k[2] = width - 1 - k[2]
            out["intrinsics"] = k
        if "image_right" in out:
            for left, right in [*STEREO_PAIRS, *frame_stereo_pairs(out)]:
                if (left in out) != (right in out):
                    raise ValueError(f"HorizontalFlip: a stereo sample with {left if left in out else right} "
                                     f"needs {right if left in out else left} too (zeros if unknown) to swap views")
                if left in out:
                    out[left], out[right] = out[right], out[left]
            poses = [key for key in out if is_pose_key(key)]
            if poses:  # the right camera becomes the target: its motion is T(-b) P T(b)
                if "baseline_m" not in out:
                    raise ValueError(f"HorizontalFlip: a stereo sample with {poses[0]} needs baseline_m to swap views")
                to_right = np.eye(4)
                to_right[0, 3] = -float(out["baseline_m"])  # T(-b): a left-camera point in the right camera
                _conjugate_poses(out, to_right)
        _conjugate_poses(out, np.diag([-1.0, 1.0, 1.0]))
        return out


class _CropCamera:
    """Shift the principal point by a crop's origin (and the padding it added)."""

    def apply_with_params(self, params: dict[str, Any], *args: Any, **data: Any) -> dict[str, Any]:
        out = super().apply_with_params(params, *args, **data)  # type: ignore[misc]
        x_min, y_min = params["crop_coords"][:2]
        pad = params.get("pad_params") or {}
        _shift_camera(out, pad.get("pad_left", 0) - x_min, pad.get("pad_top", 0) - y_min)
        return out


class RandomCrop(_CropCamera, A.RandomCrop):
    """albumentations ``RandomCrop``; padding (``pad_if_needed``) fills depth with 0."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **_constant_border("RandomCrop", kwargs))


class CenterCrop(_CropCamera, A.CenterCrop):
    """albumentations ``CenterCrop``; padding fills depth with 0."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **_constant_border("CenterCrop", kwargs))


class Crop(_CropCamera, A.Crop):
    """albumentations ``Crop`` (x_min, y_min, x_max, y_max; max exclusive)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **_constant_border("Crop", kwargs))


class Resize(A.Resize):
    """albumentations ``Resize``: image bilinear (by default), depth nearest; fx, fy, cx, cy rescaled.

    Depth values are unchanged: the same scene seen at another resolution (contrast EigenScale).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _reject("Resize", kwargs, "area_for_downscale", [None, "image"], "INTER_AREA would average depth")
        super().__init__(*args, **_nearest_masks("Resize", kwargs, DEPTH_INTERPOLATION))

    def apply_with_params(self, params: dict[str, Any], *args: Any, **data: Any) -> dict[str, Any]:
        out = super().apply_with_params(params, *args, **data)
        height, width = params["shape"][:2]
        _scale_camera(out, self.width / width, self.height / height)
        return out


class Rotate(A.Rotate):
    """albumentations ``Rotate`` about the image centre, the new border is depth 0 (masked out).

    A rotation in the image plane about the optical axis keeps every point's z-depth, so the depth
    values move unchanged. ``intrinsics`` are left as they are (exact when the principal point is
    the image centre; a rotated camera has no (fx, fy, cx, cy) form otherwise); a rotated stereo
    pair is no longer rectified, so leave rotation out when training from stereo. Poses
    ``pose_f*`` are conjugated by the rotation about the optical axis (exact under the same
    condition, with fx = fy).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # warpAffine's nearest rounds the source coordinate (no half-pixel shift, unlike cv2.resize).
        super().__init__(*args, **_nearest_masks("Rotate", _constant_border("Rotate", kwargs), cv2.INTER_NEAREST))

    def apply_with_params(self, params: dict[str, Any], *args: Any, **data: Any) -> dict[str, Any]:
        out = super().apply_with_params(params, *args, **data)
        linear = np.asarray(params["matrix"], dtype=np.float64)[:2, :2]  # source -> output pixel offsets
        angle = np.arctan2(linear[1, 0], linear[0, 0])
        c, s = np.cos(angle), np.sin(angle)
        _conjugate_poses(out, np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]))
        return out


class EigenScale(A.DualTransform):
    """Eigen et al. 2014's scale augmentation: resize by s ~ U(scale_range), divide depth by s.

    Zooming into an image by s looks like a scene s times closer: the camera becomes s K, the
    scene (depth and stereo baseline) shrinks by 1/s, so disparity scales by s like the pixels do.
    The output is larger than the input; follow it with a crop to the training size.
    """

    def __init__(self, scale_range: tuple[float, float] = (1.0, 1.5), p: float = 0.5) -> None:
        super().__init__(p=p)
        lo, hi = float(scale_range[0]), float(scale_range[1])
        if not 0 < lo <= hi:
            raise ConfigError(f"transform EigenScale: need 0 < scale_range[0] <= scale_range[1], got {scale_range}")
        self.scale_range = (lo, hi)

    def get_params(self) -> dict[str, Any]:
        return {"scale": self.py_random.uniform(*self.scale_range)}

    @staticmethod
    def _size(shape: tuple[int, ...], scale: float) -> tuple[int, int]:
        return max(1, round(shape[1] * scale)), max(1, round(shape[0] * scale))  # cv2 order: (W, H)

    def apply(self, img: np.ndarray, scale: float, **params: Any) -> np.ndarray:
        return cv2.resize(img, self._size(img.shape, scale), interpolation=cv2.INTER_LINEAR)

    def apply_to_mask(self, mask: np.ndarray, scale: float, **params: Any) -> np.ndarray:
        resized = cv2.resize(mask, self._size(mask.shape, scale), interpolation=DEPTH_INTERPOLATION)
        return (resized / np.float32(scale)).astype(mask.dtype)  # 0 stays 0: holes stay holes

    def apply_with_params(self, params: dict[str, Any], *args: Any, **data: Any) -> dict[str, Any]:
        out = super().apply_with_params(params, *args, **data)
        shape, scale = params["shape"], params["scale"]
        width, height = self._size(shape, scale)
        _scale_camera(out, width / shape[1], height / shape[0])
        if "baseline_m" in out:
            out["baseline_m"] = float(out["baseline_m"]) / scale
        _scale_poses(out, scale)
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale_range",)


class ChannelScale(ImageOnlyTransform):
    """Eigen et al. 2014's colour augmentation: multiply R, G, B by one draw c ~ U(scale_range)^3."""

    def __init__(self, scale_range: tuple[float, float] = (0.8, 1.2), p: float = 0.5) -> None:
        super().__init__(p=p)
        lo, hi = float(scale_range[0]), float(scale_range[1])
        if not 0 <= lo <= hi:
            raise ConfigError(f"transform ChannelScale: need 0 <= scale_range[0] <= scale_range[1], got {scale_range}")
        self.scale_range = (lo, hi)

    def get_params(self) -> dict[str, Any]:
        return {"factors": np.array([self.py_random.uniform(*self.scale_range) for _ in range(3)], np.float32)}

    def apply(self, img: np.ndarray, factors: np.ndarray, **params: Any) -> np.ndarray:
        scaled = img.astype(np.float32) * factors
        if img.dtype == np.uint8:
            return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return np.clip(scaled, 0.0, 1.0).astype(img.dtype)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale_range",)


#: Geometric transforms that are depth-aware (nearest depth, zero borders, camera updated).
GEOMETRIC: dict[str, type[A.DualTransform]] = {
    cls.__name__: cls for cls in (HorizontalFlip, RandomCrop, CenterCrop, Crop, Resize, Rotate, EigenScale)
}
PHOTOMETRIC: dict[str, type[ImageOnlyTransform]] = {"ChannelScale": ChannelScale}
_COMPOSITIONS = {"OneOf": A.OneOf, "SomeOf": A.SomeOf, "Sequential": A.Sequential}


def build_transform(spec: Mapping[str, Any], where: str = "transforms") -> A.BasicTransform | A.BaseCompose:
    """One transform from ``{name: X, **arguments}`` (``OneOf``/``SomeOf``/``Sequential`` take ``transforms``)."""
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ConfigError(f"{where}: each transform is a mapping with a 'name', got {spec!r}")
    kwargs = dict(spec)
    name = kwargs.pop("name")
    if name in _COMPOSITIONS:
        children = [build_transform(s, f"{where}.{name}") for s in kwargs.pop("transforms", [])]
        return _COMPOSITIONS[name](children, **kwargs)
    if name == "Normalize":
        raise ConfigError(f"{where}: Normalize is not needed: networks normalise with their timm encoder's "
                          "pretrained mean/std themselves (images stay RGB in [0, 1])")
    cls = GEOMETRIC.get(name) or PHOTOMETRIC.get(name)
    if cls is None:
        foreign = getattr(A, name, None)
        if not (isinstance(foreign, type) and issubclass(foreign, A.BasicTransform)):
            raise ConfigError(f"{where}: unknown transform {name!r}; depth-aware geometric transforms: "
                              f"{', '.join(GEOMETRIC)}; photometric: any albumentations ImageOnlyTransform")
        if not issubclass(foreign, ImageOnlyTransform):
            raise ConfigError(f"{where}: {name} moves pixels but is not depth-aware (it would not keep depth, "
                              f"masks and camera consistent); use one of {', '.join(GEOMETRIC)}")
        cls = foreign
    try:
        if cls in (EigenScale, ChannelScale):
            return cls(**kwargs)
        try:
            return cls(**kwargs, strict=True)  # albumentations' schema: unknown arguments are errors
        except TypeError as exc:
            if "strict" not in str(exc):
                raise
            return cls(**kwargs)  # a transform without a validated schema
    except (TypeError, ValueError) as exc:
        message = str(exc) if isinstance(exc, ConfigError) else f"{name}: {exc}"
        raise ConfigError(f"{where}: {' '.join(message.split())}") from None


class DepthAugment:
    """The augmentation of one split: an ``A.Compose`` over image, depth and the other view.

    Call it on a NumPy sample (see the module docstring); returns a new dict. Each DataLoader worker
    reseeds the pipeline from its torch seed, so workers draw different augmentations and a run
    seeded with ``seed_everything`` is repeatable. Called with a ``seed``, the draw is that seed's
    alone (a sample that is a pure function of its index, whichever worker makes it).
    """

    def __init__(self, transforms: Sequence[A.BasicTransform | A.BaseCompose]) -> None:
        self.compose = A.Compose(list(transforms), additional_targets=dict(TARGETS), p=1.0)
        self._targets = dict(TARGETS)
        self._seeded_for: tuple[int, int] | None = None
        # The YAML list it was built from (from_config), None otherwise: what `depthlab data pack` records.
        self.specs: list[dict[str, Any]] | None = None

    @classmethod
    def from_config(cls, specs: Sequence[Mapping[str, Any]] | None, where: str = "transforms") -> DepthAugment | None:
        if not specs:
            return None
        augment = cls([build_transform(s, f"{where}[{i}]") for i, s in enumerate(specs)])
        augment.specs = [dict(s) for s in specs]
        return augment

    @property
    def swaps_views(self) -> bool:
        """Whether a draw can swap a stereo pair's views (a :class:`HorizontalFlip` anywhere in the
        pipeline): the left view's maps may then come from the right view's (data sets load both)."""
        def walk(transforms: Sequence[Any]) -> bool:
            return any(isinstance(t, HorizontalFlip) or walk(getattr(t, "transforms", ())) for t in transforms)

        return walk(self.compose.transforms)

    def _reseed(self) -> None:
        info = torch.utils.data.get_worker_info()
        seed = torch.initial_seed() if info is None else info.seed
        key = (os.getpid(), seed)
        if key != self._seeded_for:
            self.compose.set_random_seed(seed % 2**32)
            self._seeded_for = key

    def __call__(self, sample: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
        if seed is None:
            self._reseed()
        else:
            self.compose.set_random_seed(seed % 2**32)
            self._seeded_for = None  # the worker's own stream is reseeded at its next use
        new_targets = {k: v for k, v in albumentations_targets(sample).items() if k not in self._targets}
        if new_targets:  # temporal frames (image_f-1, ...): targets are declared as samples bring them
            self.compose.add_targets(new_targets)
            self._targets.update(new_targets)
        return self.compose(**complete_stereo_pairs(sample))

    def __repr__(self) -> str:
        return f"DepthAugment({self.compose!r})"
