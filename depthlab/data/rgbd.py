"""Users' own RGB-D data: a folder or a manifest per split, any camera, any image size.

    depthlab data check --config configs/own_data.yaml
    depthlab data stats --config configs/own_data.yaml
    depthlab fit --config configs/own_data.yaml

Each of ``train``, ``val`` and ``test`` is either

- a **folder** holding ``rgb/`` (or ``image/``, ``images/``) and ``depth/``, files paired by their
  path without suffix (``rgb/a/0001.jpg`` with ``depth/a/0001.png``; subfolders are mirrored), and
  optionally ``right/`` for the rectified right view (paired the same way); or
- a **manifest**: a ``.csv`` file with a header row or a ``.jsonl`` file (one JSON object a line),
  one sample per row, columns ``image``, ``depth`` and optionally ``right``, ``fx``, ``fy``, ``cx``,
  ``cy``, ``baseline_m``, ``depth_scale``; paths relative to the manifest's folder.

Depth files (:func:`read_depth_file`):

- ``.png``: single-channel 16-bit; metres = value x ``depth_scale`` (0.001: millimetres, the
  default; 1/256: KITTI's convention);
- ``.tif``/``.tiff`` (single-channel 32-bit float) and ``.npy`` (float, (H, W) or (1, H, W)): metres
  (times the row's ``depth_scale`` where a manifest gives one);
- a raw value equal to ``invalid_value`` (default 0), a non-finite or a negative value is "no
  measurement" (0); sparse depth (LiDAR-like) is fine.

Camera: ``fx, fy, cx, cy`` per manifest row, or ``intrinsics: [fx, fy, cx, cy]`` for the whole data
set, in pixels of the files as stored (pixel centres at integer coordinates, as OpenCV); they follow
every resize and crop. No intrinsics at all is fine for supervised training; a loss or protocol
that needs them refuses to start with one line (the module then does not provide ``intrinsics``).
A stereo right view with a baseline (``right/`` and ``baseline_m``, or the columns) makes the
module provide ``image_right`` and ``baseline_m`` for the stereo losses.

Videos (``sequence: true`` with temporal ``frame_ids``, ``depthlab.data.keys``): the images of each
subfolder (of ``rgb/``, or of the manifest's image paths) are the ordered frames of one video,
sorted by file name; frame k of a sample is the image k places after it in its subfolder
(``image_f{k:+d}``; with a right view, that frame's right view too, ``image_right_f{k:+d}``). A
frame whose neighbours fall outside its video (the first and last ones) is not a target: it is left
out of the split (one info line gives the count) but still serves as its neighbours' neighbour.
Intrinsics are required (one camera for all frames of a sample). With ``val_fraction`` the held-out
rows are drawn after this, so a training sample's neighbour may be a held-out row's image.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Sequence

import cv2
import numpy as np
from torch.utils.data import BatchSampler, DataLoader, Dataset, SequentialSampler

from depthlab.data.base import DepthFileDataset, FileDataModule, Split
from depthlab.data.images import SizeGroupedBatchSampler, header_size
from depthlab.data.keys import STEREO_FRAME, check_frame_ids, frame_suffix, temporal_ids, view_keys
from depthlab.data.stereo_hints import StereoHintsMixin, read_hints
from depthlab.data.readers import DTYPE, LIST, MISSING, SIZE, UNREADABLE, read_rgb
from depthlab.data.transforms import DepthAugment
from depthlab.errors import ConfigError, DataError, Problem

IMAGE_FOLDERS = ("rgb", "image", "images")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
DEPTH_SUFFIXES = (".png", ".tif", ".tiff", ".npy")
MANIFEST_SUFFIXES = (".csv", ".jsonl")
CAMERA_COLUMNS = ("fx", "fy", "cx", "cy")
NUMBER_COLUMNS = (*CAMERA_COLUMNS, "baseline_m", "depth_scale")
PATH_COLUMNS = ("image", "depth", "right")


@dataclass(frozen=True)
class RGBDRow:
    """One sample on disk: its files, its camera (if known) and where it was listed."""

    image: Path
    depth: Path | None
    source: str  # "manifest.csv:12" or "folder rgb/0001.jpg"
    right: Path | None = None
    intrinsics: tuple[float, float, float, float] | None = None
    baseline_m: float | None = None
    depth_scale: float | None = None
    key: str = ""  # the image's path relative to its folder or manifest, without suffix (names its hints)
    neighbours: tuple[tuple[int, Path, Path | None], ...] = ()  # (k, image, right view) of frame k (videos)


def read_depth_file(path: Path, depth_scale: float, source: str, invalid_value: float = 0.0,
                    shape: tuple[int, int] | None = None, row_scale: float | None = None) -> np.ndarray:
    """A depth file as (H, W) float32 metres, 0 = no measurement (see the module docstring)."""
    if not path.is_file():
        raise DataError(Problem(MISSING, str(path), "no such file", source))
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            raw = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(Problem(UNREADABLE, str(path), f"not a .npy array ({exc})", source)) from None
        if raw.ndim == 3 and raw.shape[0] == 1:
            raw = raw[0]
        kind = "float .npy"
    elif suffix in (".png", ".tif", ".tiff"):
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise DataError(Problem(UNREADABLE, str(path), f"not a decodable {suffix[1:].upper()}", source))
        kind = "16-bit PNG" if suffix == ".png" else "32-bit float TIFF"
    else:
        raise DataError(Problem(UNREADABLE, str(path), f"depth must be .png, .tif/.tiff or .npy, not {suffix}", source))
    if raw.ndim != 2:
        raise DataError(Problem(DTYPE, str(path), f"depth must be single-channel, got shape {raw.shape}", source))
    if suffix == ".png":
        if raw.dtype != np.uint16:
            raise DataError(Problem(DTYPE, str(path), f"depth PNG must be 16-bit (uint16), got {raw.dtype}: an "
                                    "8-bit PNG cannot hold depth (save it as uint16 with a depth_scale)", source))
        scale = depth_scale if row_scale is None else row_scale
    else:
        if raw.dtype.kind != "f":
            raise DataError(Problem(DTYPE, str(path), f"{kind} depth must hold floats in metres, got {raw.dtype}",
                                    source))
        scale = 1.0 if row_scale is None else row_scale
    if shape is not None and raw.shape != tuple(shape):
        raise DataError(Problem(SIZE, str(path), f"depth is {raw.shape[0]}x{raw.shape[1]}, its image "
                                f"{shape[0]}x{shape[1]}", source))
    valid = (raw != invalid_value) & (raw > 0)  # NaN compares False: not valid either
    if raw.dtype.kind == "f":
        valid &= np.isfinite(raw)
    inverse = 1.0 / scale
    if raw.dtype.kind == "u" and abs(inverse - round(inverse)) <= 1e-9 * inverse:
        # millimetres, 1/256 m, ...: an integer divided by an integer in float32 is the nearest float32
        # to the true metres (IEEE division is correctly rounded; uint16 is exact in float32)
        depth = raw.astype(np.float32)
        depth /= np.float32(round(inverse))
    else:
        depth = (raw.astype(np.float64) * scale).astype(np.float32)
    depth[~valid] = 0
    return depth


# --- listing a split --------------------------------------------------------------------------------


def _by_stem(folder: Path, suffixes: Sequence[str], role: str) -> dict[str, Path]:
    """``{relative path without suffix: file}`` of the files of ``folder`` (recursive)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or any(p.startswith(".") for p in relative.parts):
            continue
        if path.suffix.lower() not in suffixes:
            continue
        stem = relative.with_suffix("").as_posix()
        if stem in found:
            raise ConfigError(f"{folder}: {found[stem].name} and {path.name} are both {role} {stem}: keep one")
        found[stem] = path
    return found


def scan_folder(root: Path, key: str) -> list[RGBDRow]:
    """The samples of a folder split: ``rgb/`` (or ``image/``, ``images/``) paired with ``depth/``
    (and ``right/``) by relative path without suffix. Every unpaired file is reported at once."""
    image_dir = next((root / name for name in IMAGE_FOLDERS if (root / name).is_dir()), None)
    if image_dir is None:
        raise ConfigError(f"data.{key}: {root} has no {'/, '.join(IMAGE_FOLDERS)}/ folder of images "
                          "(see docs/data.md, Train on your own data)")
    if not (root / "depth").is_dir():
        raise ConfigError(f"data.{key}: {root} has no depth/ folder beside {image_dir.name}/")
    images = _by_stem(image_dir, IMAGE_SUFFIXES, "image")
    if not images:
        raise ConfigError(f"data.{key}: no {'/'.join(IMAGE_SUFFIXES)} image in {image_dir}")
    depths = _by_stem(root / "depth", DEPTH_SUFFIXES, "depth")
    rights = _by_stem(root / "right", IMAGE_SUFFIXES, "right view") if (root / "right").is_dir() else None
    problems = []
    for stem, image in images.items():
        if stem not in depths:
            problems.append(Problem(MISSING, str(root / "depth" / stem) + ".*",
                                    f"no depth file ({'/'.join(DEPTH_SUFFIXES)}) for image {image.name}", f"data.{key}"))
        if rights is not None and stem not in rights:
            problems.append(Problem(MISSING, str(root / "right" / stem) + ".*", f"no right view for image "
                                    f"{image.name}", f"data.{key}"))
    for stem, depth in depths.items():
        if stem not in images:
            problems.append(Problem(MISSING, str(image_dir / stem) + ".*", f"no image for depth file {depth.name}",
                                    f"data.{key}"))
    if problems:
        raise DataError(problems)
    return [RGBDRow(image, depths[stem], f"{root}: {image.relative_to(root).as_posix()}",
                    None if rights is None else rights[stem], key=stem) for stem, image in images.items()]


def _manifest_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "image" not in [n.strip() for n in reader.fieldnames]:
                raise DataError(Problem(LIST, str(path), f"no 'image' column in the header row "
                                        f"{reader.fieldnames}", f"{path}:1"))
            return [(reader.line_num, {k.strip(): (v.strip() if isinstance(v, str) else v)
                                       for k, v in row.items() if k is not None})
                    for row in reader if any((v or "").strip() for v in row.values() if isinstance(v, str))]
    rows, problems = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(LIST, str(path), f"not a JSON object ({exc.msg})", f"{path}:{lineno}"))
            continue
        if not isinstance(row, dict):
            problems.append(Problem(LIST, str(path), "not a JSON object", f"{path}:{lineno}"))
            continue
        rows.append((lineno, row))
    if problems:
        raise DataError(problems)
    return rows


def read_manifest(path: Path, key: str) -> list[RGBDRow]:
    """The samples of a manifest (see the module docstring); every bad row is reported at once."""
    rows, problems = [], []
    for lineno, row in _manifest_rows(path):
        source = f"{path}:{lineno}"
        if not row.get("image"):
            problems.append(Problem(LIST, str(path), "no 'image' value", source))
            continue
        numbers: dict[str, float] = {}
        for column in NUMBER_COLUMNS:
            value = row.get(column)
            if value in (None, ""):
                continue
            try:
                numbers[column] = float(value)
            except (TypeError, ValueError):
                problems.append(Problem(LIST, str(path), f"column {column}: {value!r} is not a number", source))
        camera = [numbers.get(c) for c in CAMERA_COLUMNS]
        if any(v is not None for v in camera) and not all(v is not None for v in camera):
            problems.append(Problem(LIST, str(path), "give all of fx, fy, cx, cy or none", source))
        paths = {c: (path.parent / str(row[c]).strip()) if row.get(c) not in (None, "") else None
                 for c in PATH_COLUMNS}
        rows.append(RGBDRow(paths["image"], paths["depth"], source, paths["right"],
                            tuple(camera) if all(v is not None for v in camera) else None,  # type: ignore[arg-type]
                            numbers.get("baseline_m"), numbers.get("depth_scale"),
                            key=Path(str(row["image"]).strip()).with_suffix("").as_posix().lstrip("/")))
    if problems:
        raise DataError(problems)
    if not rows:
        raise ConfigError(f"data.{key}: the manifest {path} has no sample row")
    return rows


def list_split(spec: str | Path, key: str) -> list[RGBDRow]:
    """The rows of one split given as a folder or a manifest file."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return scan_folder(path, key)
    if path.is_file():
        if path.suffix.lower() not in MANIFEST_SUFFIXES:
            raise ConfigError(f"data.{key}: {path} is neither a folder nor a .csv/.jsonl manifest")
        return read_manifest(path, key)
    raise ConfigError(f"data.{key}: {path} does not exist (a folder with rgb/ and depth/, or a .csv/.jsonl manifest)")


def with_neighbours(rows: Sequence[RGBDRow], frame_ids: Sequence[int | str], key: str) -> list[RGBDRow]:
    """The rows that have every temporal neighbour of ``frame_ids`` in their video (see the module
    docstring), each with its :attr:`RGBDRow.neighbours`; the others are left out, with one info line."""
    videos: dict[str, list[RGBDRow]] = defaultdict(list)
    for row in rows:
        videos[PurePosixPath(row.key).parent.as_posix()].append(row)
    offsets = temporal_ids(frame_ids)
    kept = []
    for frames in videos.values():
        frames.sort(key=lambda r: PurePosixPath(r.key).name)
        for i, row in enumerate(frames):
            if all(0 <= i + k < len(frames) for k in offsets):
                kept.append(replace(row, neighbours=tuple((k, frames[i + k].image, frames[i + k].right)
                                                          for k in offsets)))
    if not kept:
        raise ConfigError(f"data.{key}: no frame has all its neighbours {list(offsets)} in its video "
                          f"({len(videos)} videos of {len(rows)} frames)")
    if len(kept) < len(rows):
        from lightning.pytorch.utilities import rank_zero_info

        rank_zero_info(f"data.{key}: {len(rows) - len(kept)} of {len(rows)} frames are not targets: their neighbours "
                       f"{list(offsets)} fall outside their video ({len(videos)} videos)")
    return kept


def read_right(path: Path, left_shape: tuple[int, ...], source: str) -> np.ndarray:
    """The rectified right view, which must have its left image's size."""
    right = read_rgb(path, source)
    if right.shape != tuple(left_shape):
        raise DataError(Problem(SIZE, str(path), f"right view is {right.shape[0]}x{right.shape[1]}, its left image "
                                f"{left_shape[0]}x{left_shape[1]}", source))
    return right


# --- Depth Hints (depthlab hints precompute) ------------------------------------------------------

HINT_LAYOUT = "<image path relative to its folder or manifest, without suffix>.npy (left view), <...>_right.npy"
HINTS_DATA = {"dataset": "rgbd"}


def hint_files(key: str) -> dict[str, str]:
    """The hint files of a row (sample key -> path relative to hints_root)."""
    return {"hint": f"{key}.npy", "hint_right": f"{key}_right.npy"}


@dataclass(frozen=True)
class RGBDHintJob:
    """One row's rectified pair for ``depthlab hints precompute`` (plain values: it pickles)."""

    image: str
    right: str
    fx: float
    baseline_m: float
    key: str
    source: str

    @property
    def outputs(self) -> tuple[str, str]:
        files = hint_files(self.key)
        return files["hint"], files["hint_right"]

    def read(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        left = read_rgb(Path(self.image), self.source)
        return left, read_right(Path(self.right), left.shape, self.source), self.fx, self.baseline_m


# --- the data set and its module ------------------------------------------------------------------


class RGBDDataset(DepthFileDataset):
    """The rows of one split as depthlab samples (``load -> augment -> to_tensors``)."""

    def __init__(self, rows: Sequence[RGBDRow], depth_scale: float = 1e-3, invalid_value: float = 0.0,
                 augment: DepthAugment | None = None, hints_root: Path | None = None) -> None:
        super().__init__(augment)
        self.rows, self.depth_scale, self.invalid_value = list(rows), depth_scale, invalid_value
        self.hints_root = hints_root

    def __len__(self) -> int:
        return len(self.rows)

    def source(self, index: int) -> str:
        return self.rows[index].source

    def depth_file(self, index: int, view: str = "") -> str:
        return str(self.rows[index].depth)

    def source_files(self, index: int) -> dict[str, Path]:
        row = self.rows[index]
        files = {"image": row.image}
        if row.depth is not None:
            files["depth"] = row.depth
        if row.right is not None:
            files["image_right"] = row.right
        for k, path, right in row.neighbours:
            files["image" + frame_suffix(k)] = path
            if row.right is not None and right is not None:
                files["image_right" + frame_suffix(k)] = right
        return files

    def load(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        image = read_rgb(row.image, row.source)
        shape = image.shape[:2]
        # named as listed: `depthlab predict` names its files after it, `depthlab evaluate` finds them by it
        sample: dict[str, Any] = {"image": image, "name": row.key + row.image.suffix}
        # The files of maps nobody reads (SampleDataset.wants: e.g. the right view under a supervised
        # objective) are not read.
        if row.depth is not None and self.wants("depth"):
            sample["depth"] = read_depth_file(row.depth, self.depth_scale, row.source, self.invalid_value, shape,
                                              row.depth_scale)
        if row.right is not None and self.wants("image_right"):
            sample["image_right"] = read_right(row.right, image.shape, row.source)
        problems = []
        for k, path, right in row.neighbours:
            try:
                if self.wants("image" + frame_suffix(k)):
                    frame = read_rgb(path, row.source)
                    if frame.shape != image.shape:
                        raise DataError(Problem(SIZE, str(path), f"frame {k:+d} is {frame.shape[0]}x{frame.shape[1]}, "
                                                f"its target {shape[0]}x{shape[1]}", row.source))
                    sample["image" + frame_suffix(k)] = frame
                if row.right is not None and self.wants("image_right" + frame_suffix(k)):
                    sample["image_right" + frame_suffix(k)] = read_right(right, image.shape, row.source)
            except DataError as exc:
                problems.extend(exc.problems)
        if problems:
            raise DataError(problems)
        if row.intrinsics is not None:
            sample["intrinsics"] = np.asarray(row.intrinsics, dtype=np.float64)
        if row.baseline_m is not None:
            sample["baseline_m"] = row.baseline_m
        if self.hints_root is not None:  # read before any resize or crop: cut and moved with depth
            files = hint_files(row.key)
            if row.right is None:
                files.pop("hint_right")
            files = {key: path for key, path in files.items() if self.wants(key)}
            sample.update(read_hints(self.hints_root, files, shape, row.source))
        return sample


MixedSizes = Literal["error", "group"]


class RGBDDataModule(StereoHintsMixin, FileDataModule):
    """Your own RGB-D data (see the module docstring and docs/data.md, "Train on your own data").

    Args:
        train, val, test: a folder (``rgb/`` + ``depth/`` [+ ``right/``]) or a ``.csv``/``.jsonl``
            manifest for each split. Without ``val``, ``val_fraction`` of ``train`` is held out;
            without ``test``, ``test`` reads the validation split.
        depth_scale: metres per unit of a 16-bit depth PNG (0.001: millimetres; 1/256: KITTI).
        invalid_value: the raw depth value that means "no measurement" (besides non-finite values).
        intrinsics: ``[fx, fy, cx, cy]`` in pixels of the files as stored, for every sample whose
            manifest row does not give its own.
        baseline_m: the stereo baseline in metres for every sample with a right view (rows may give
            their own ``baseline_m``).
        size: ``[H, W]``: every sample is resized to it (image bilinear, depth nearest, intrinsics
            rescaled) before the transforms. Without it, images of different sizes are refused in
            training (give ``size`` or a crop to a fixed size in ``train_transforms``) and, in
            validation and test, batched by size (``mixed_sizes: group``) or refused (``error``).
        val_fraction: the share of ``train`` held out as validation when ``val`` is not given; the
            held-out rows are a pure function of ``split_seed``.
        eval_protocol: this data's evaluation protocol (``none``, ``nyu``, ``kitti`` or a mapping);
            null: the model's ``eval_protocol`` (``none`` by default: the model's depth range, no crop).
        hints_root: Depth Hints folder for stereo rows (``depthlab hints precompute`` fills it,
            layout :data:`HINT_LAYOUT`; needs ``fx`` and ``baseline_m``): every sample then carries
            ``hint`` and ``hint_right``. None (default): no hints.
        sequence: the images are videos (one per subfolder, frames in name order; see the module
            docstring), for temporal ``frame_ids``.
        frame_ids: the frames of each sample (``depthlab.data.keys``; default ``[0]``); temporal ids
            need ``sequence: true``; ``s`` needs right views.
    """

    def __init__(
        self,
        train: str | None = None,
        val: str | None = None,
        test: str | None = None,
        depth_scale: float = 1e-3,
        invalid_value: float = 0.0,
        intrinsics: tuple[float, float, float, float] | None = None,
        baseline_m: float | None = None,
        size: tuple[int, int] | None = None,
        mixed_sizes: MixedSizes = "group",
        val_fraction: float = 0.0,
        split_seed: int = 0,
        eval_protocol: str | dict[str, Any] | None = None,
        hints_root: str | None = None,
        sequence: bool = False,
        frame_ids: list[int | str] | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        train_transforms: list[dict[str, Any]] | None = None,
        eval_transforms: list[dict[str, Any]] | None = None,
    ) -> None:
        resize = [] if size is None else [{"name": "Resize", "height": int(size[0]), "width": int(size[1])}]
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ConfigError(f"data.size: expected [height, width] of positive pixels, got {list(size)}")
        super().__init__(batch_size, eval_batch_size, num_workers,
                         (resize + list(train_transforms or [])) or None, (resize + list(eval_transforms or [])) or None)
        if not (math.isfinite(depth_scale) and depth_scale > 0):
            raise ConfigError(f"data.depth_scale: expected metres per PNG unit > 0 (0.001 for millimetres), got {depth_scale}")
        if intrinsics is not None and (len(intrinsics) != 4 or not all(math.isfinite(v) for v in intrinsics)
                                       or intrinsics[0] <= 0 or intrinsics[1] <= 0):
            raise ConfigError(f"data.intrinsics: expected [fx, fy, cx, cy] in pixels with fx, fy > 0, got {intrinsics}")
        if baseline_m is not None and not baseline_m > 0:
            raise ConfigError(f"data.baseline_m: expected the stereo baseline in metres > 0, got {baseline_m}")
        if not 0 <= val_fraction < 1:
            raise ConfigError(f"data.val_fraction: expected a share in [0, 1), got {val_fraction}")
        if mixed_sizes not in ("error", "group"):
            raise ConfigError(f"data.mixed_sizes: expected error or group, got {mixed_sizes!r}")
        self.paths = {"train": train, "val": val, "test": test}
        self.depth_scale, self.invalid_value = depth_scale, invalid_value
        self.intrinsics = None if intrinsics is None else tuple(float(v) for v in intrinsics)
        self.baseline_m, self.size, self.mixed_sizes = baseline_m, size, mixed_sizes
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.eval_protocol = eval_protocol
        self.hints_root = hints_root
        self.frame_ids = check_frame_ids([0] if frame_ids is None else frame_ids)
        self.sequence = sequence
        if temporal_ids(self.frame_ids) and not sequence:
            raise ConfigError(f"data.frame_ids: temporal frames {list(temporal_ids(self.frame_ids))} need "
                              "data.sequence: true (the images of each subfolder are the frames of one video)")
        self.has_crop = any(str(t.get("name", "")).endswith("Crop") for t in (train_transforms or []))
        self._rows: dict[str, list[RGBDRow]] = {}
        self._size_cache: dict[str, list[tuple[int, int]]] = {}
        self._split_rows: tuple[list[RGBDRow], list[RGBDRow]] | None = None

    # -- rows ------------------------------------------------------------------------------------

    def _list(self, spec: str | Path, key: str) -> list[RGBDRow]:
        """:func:`list_split`, then, for videos, the rows with all their neighbours (:func:`with_neighbours`)."""
        rows = list_split(spec, key)
        if not temporal_ids(self.frame_ids):
            return rows
        if self.intrinsics is None:
            without = next((r for r in rows if r.intrinsics is None), None)
            if without is not None:
                raise ConfigError(f"data.intrinsics: video frames (data.frame_ids) need the camera, and {without.source} "
                                  "has none: give data.intrinsics [fx, fy, cx, cy] or the fx..cy columns")
        return with_neighbours(rows, self.frame_ids, key)

    def _complete(self, row: RGBDRow) -> RGBDRow:
        return replace(row, intrinsics=row.intrinsics or self.intrinsics,
                       baseline_m=row.baseline_m if row.baseline_m is not None or row.right is None else self.baseline_m)

    def rows(self, split: Split) -> list[RGBDRow]:
        """The rows of ``split`` (listed once; every listing problem is reported at once)."""
        if split in self._rows:
            return self._rows[split]
        if self.paths["train"] is None and self.paths["val"] is None and self.paths["test"] is None:
            raise ConfigError("data.train is not set: give a folder (rgb/ + depth/) or a .csv/.jsonl manifest")
        source = split
        if split == "test" and self.paths["test"] is None:
            source = "val"
        if source == "val" and self.paths["val"] is None:
            if self.paths["train"] is None or self.val_fraction <= 0:
                raise ConfigError(f"data.val is not set: give a folder or manifest, or data.val_fraction > 0 to hold "
                                  f"out part of data.train (needed for {split})")
            rows = self._held_out()[1]
        elif source == "train":
            if self.paths["train"] is None:
                raise ConfigError("data.train is not set: give a folder (rgb/ + depth/) or a .csv/.jsonl manifest")
            rows = self._held_out()[0] if self.paths["val"] is None and self.val_fraction > 0 else \
                self._list(self.paths["train"], "train")
        else:
            rows = self._list(self.paths[source], source)  # type: ignore[arg-type]
        rows = [self._complete(r) for r in rows]
        self._check_consistent(rows, split)
        self._rows[split] = rows
        return rows

    def _held_out(self) -> tuple[list[RGBDRow], list[RGBDRow]]:
        """(train, held-out val) rows of ``train`` (listed once for both splits)."""
        if self._split_rows is None:
            rows = self._list(self.paths["train"], "train")  # type: ignore[arg-type]
            count = max(1, int(round(len(rows) * self.val_fraction)))
            if count >= len(rows):
                raise ConfigError(f"data.val_fraction {self.val_fraction} of {len(rows)} training rows leaves none to "
                                  "train on")
            held = set(np.random.default_rng(self.split_seed).permutation(len(rows))[:count].tolist())
            self._split_rows = ([r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held])
        return self._split_rows

    def _check_consistent(self, rows: list[RGBDRow], split: str) -> None:
        """Every batch must carry the same keys: intrinsics, right views and baselines for all or none."""
        for what, has in (("intrinsics (fx, fy, cx, cy or data.intrinsics)", lambda r: r.intrinsics is not None),
                          ("a right view", lambda r: r.right is not None),
                          ("a depth file", lambda r: r.depth is not None)):
            with_it = [r for r in rows if has(r)]
            if with_it and len(with_it) != len(rows):
                without = next(r for r in rows if not has(r))
                raise ConfigError(f"data.{split}: {without.source} has no {what} while {with_it[0].source} has one: "
                                  "give it for every sample or none")
        stereo = [r for r in rows if r.right is not None]
        with_baseline = [r for r in stereo if r.baseline_m is not None]
        if with_baseline and len(with_baseline) != len(stereo):
            without = next(r for r in stereo if r.baseline_m is None)
            raise ConfigError(f"data.{split}: {without.source} has no baseline_m while {with_baseline[0].source} has "
                              "one: give it for every stereo sample (or data.baseline_m)")

    # -- the DepthFileDataset / FileDataModule contract ------------------------------------------

    def _keys(self) -> tuple[bool, bool, bool, bool]:
        rows = self.rows("train") if self.paths["train"] is not None else self.rows("val")
        first = rows[0]  # every row of a split carries the same keys (_check_consistent)
        return (first.intrinsics is not None, first.right is not None,
                first.right is not None and first.baseline_m is not None, first.depth is not None)

    @property
    def provides(self) -> frozenset[str]:
        camera, stereo, baseline, depth = self._keys()
        if STEREO_FRAME in self.frame_ids and not stereo:
            raise ConfigError("data.frame_ids: 's' (the stereo view) needs right views (right/ or the right column)")
        # a stereo sample's right view gets an all-zero depth map (no measurement): keys.complete_stereo_pairs;
        # a manifest without depth (stereo self-supervision) provides none
        names = ["image"] + ["depth"] * depth + ["hint"] * (self.hints_root is not None)
        keys = view_keys(names, stereo=stereo, frame_ids=self.frame_ids) | {"index", "name"}
        return keys | ({"intrinsics"} if camera else set()) | ({"baseline_m"} if baseline else set())

    def check_splits(self) -> list[Split]:
        splits: list[Split] = ["train"] if self.paths["train"] is not None else []
        if self.paths["val"] is not None or (self.paths["train"] is not None and self.val_fraction > 0):
            splits.append("val")
        if self.paths["test"] is not None:
            splits.append("test")
        return splits

    def build(self, split: Split, augment: DepthAugment | None, strict: bool = True) -> RGBDDataset:
        return RGBDDataset(self.rows(split), self.depth_scale, self.invalid_value, augment, self.hints_folder())

    # -- Depth Hints (depthlab hints precompute) ---------------------------------------------------------
    hint_layout = HINT_LAYOUT
    hints_data = HINTS_DATA

    def hint_jobs(self, split: Split) -> list[RGBDHintJob]:
        """The rectified pairs of ``split`` (every row needs a right view, ``fx`` and ``baseline_m``)."""
        if split not in self.check_splits():
            return []
        jobs = []
        for row in self.rows(split):
            missing = [what for what, value in (("a right view", row.right), ("intrinsics (fx)", row.intrinsics),
                                                ("baseline_m", row.baseline_m)) if value is None]
            if missing:
                raise ConfigError(f"data.{split}: {row.source} has no {' and no '.join(missing)}: Depth Hints need "
                                  "rectified stereo pairs with fx and baseline_m (right/ or the right column, "
                                  "data.intrinsics or fx..cy, data.baseline_m or the column)")
            jobs.append(RGBDHintJob(str(row.image), str(row.right), float(row.intrinsics[0]),  # type: ignore[index]
                                    float(row.baseline_m), row.key, row.source))  # type: ignore[arg-type]
        return jobs

    def _sizes(self, split: Split) -> list[tuple[int, int]]:
        if split not in self._size_cache:
            self._size_cache[split] = [header_size(r.image, r.source) for r in self.rows(split)]
        return self._size_cache[split]

    def _loader(self, split: Split) -> DataLoader:
        if split == "train" and self.size is None and not self.has_crop:
            sizes = self._sizes(split)
            if len(set(sizes)) > 1:
                a, b = sorted(set(sizes))[:2]
                raise ConfigError(f"data.train: images of different sizes ({a[0]}x{a[1]}, {b[0]}x{b[1]}, ...): set "
                                  "data.size [H, W], or a RandomCrop to a fixed size in data.train_transforms")
        return super()._loader(split)

    def eval_batch_sampler(self, split: Split, dataset: Dataset) -> BatchSampler | None:
        if self.size is not None:
            return None
        sizes = self._sizes(split)
        if len(set(sizes)) == 1:
            return None
        if self.mixed_sizes == "error":
            a, b = sorted(set(sizes))[:2]
            raise ConfigError(f"data.{split}: images of different sizes ({a[0]}x{a[1]}, {b[0]}x{b[1]}, ...) "
                              "with data.mixed_sizes error: set data.size or mixed_sizes group")
        return SizeGroupedBatchSampler(SequentialSampler(dataset), self.eval_batch_size, False, sizes)
