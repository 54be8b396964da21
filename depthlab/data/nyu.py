"""NYU Depth v2 in its two published forms.

1. The official labeled file ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3, i.e. HDF5) with the official
   ``splits.mat`` (``trainNdxs`` 795 / ``testNdxs`` 654 frame numbers, 1-based). MATLAB stores arrays
   column-major, so h5py sees every axis reversed: ``images`` is (1449, 3, 640, 480) for MATLAB's
   480x640x3x1449, ``depths``/``rawDepths`` (1449, 640, 480); a frame is transposed back to (480, 640).
   ``rawDepths`` (projected Kinect depth with holes = 0) is what the published evaluation used and
   the default for val/test; ``depths`` (holes filled by colourisation) is the training default.
   Frames are read lazily, one at a time, through a file handle opened in each worker process.
2. The file lists of BTS, AdaBins, GLPN and ZoeDepth: ``rgb_path depth_path focal`` lines, JPG/PNG
   images and uint16 depth PNGs in millimetres (depth = value / 1000, 0 = no measurement).

Both yield full 480x640 frames for evaluation (the ``nyu`` protocol applies the Eigen crop);
training crops/resizes come from ``train_transforms``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import scipy.io

from depthlab.data.base import DepthFileDataset, FileDataModule, Split, require_dir, resolve_path
from depthlab.data.keys import view_keys
from depthlab.data.readers import (
    MISSING, SIZE, UNREADABLE, DataError, Problem, read_depth_png, read_rgb, read_split_list,
)
from depthlab.data.transforms import DepthAugment
from depthlab.errors import ConfigError

NYU_SIZE = (480, 640)  # (H, W) of every NYUv2 frame
# RGB camera intrinsics (fx, fy, cx, cy) in pixels, NYU Depth v2 toolbox camera_params.m.
NYU_INTRINSICS = (5.1885790117450188e02, 5.1946961112127485e02, 3.2558244941119034e02, 2.5373616633400465e02)
DEPTH_PNG_SCALE = 1e-3  # millimetre PNGs (BTS utils/extract_official_train_test_set_from_mat.py)
DepthField = Literal["rawDepths", "depths"]
_SPLIT_KEYS = {"train": "trainNdxs", "test": "testNdxs"}


def read_nyu_splits(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The official ``splits.mat``: ``{"train": trainNdxs, "test": testNdxs}``, 1-based frame numbers."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"NYU splits file {path} does not exist (data/splits/splits.mat ships with depthlab)")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises several types for a bad file
        raise DataError(Problem(UNREADABLE, str(path), f"not a MATLAB .mat file ({exc})", "data.splits_path")) from None
    out = {}
    for split, key in _SPLIT_KEYS.items():
        if key not in mat:
            raise DataError(Problem(UNREADABLE, str(path), f"has no {key}", "data.splits_path"))
        out[split] = np.asarray(mat[key]).astype(np.int64).ravel()
    return out


class NYUMatDataset(DepthFileDataset):
    """Frames of the labeled ``.mat`` selected by 1-based ``frames`` (from ``splits.mat``).

    Args:
        mat_path: ``nyu_depth_v2_labeled.mat``.
        frames: 1-based frame numbers, e.g. ``read_nyu_splits(...)["test"]``.
        depth_field: ``rawDepths`` (holes = 0) or ``depths`` (filled).
        source_name: how error messages name the list of frames (``splits.mat:testNdxs``).
    """

    def __init__(self, mat_path: str | os.PathLike, frames: np.ndarray, depth_field: DepthField = "rawDepths",
                 augment: DepthAugment | None = None, source_name: str = "frames") -> None:
        super().__init__(augment)
        if depth_field not in ("rawDepths", "depths"):
            raise ConfigError(f"NYU depth field must be rawDepths or depths, got {depth_field!r}")
        self.mat_path, self.depth_field, self.source_name = Path(mat_path), depth_field, source_name
        self.frames = np.asarray(frames, dtype=np.int64)
        self._h5: h5py.File | None = None
        self._pid: int | None = None
        count = self._validate_layout()
        bad = [(i, f) for i, f in enumerate(self.frames) if not 1 <= f <= count]
        if bad:
            i, f = bad[0]
            raise DataError(Problem(SIZE, str(self.mat_path), f"frame {f} out of 1..{count} ({len(bad)} such)",
                                    self.source(i)))

    def _validate_layout(self) -> int:
        """Check the HDF5 layout once, in the main process, and close the file again."""
        where = "data.mat_path"
        if not self.mat_path.is_file():
            raise DataError(Problem(MISSING, str(self.mat_path), "no such file", where))
        try:
            with h5py.File(self.mat_path, "r") as f:
                for key in ("images", self.depth_field):
                    if key not in f:
                        raise DataError(Problem(UNREADABLE, str(self.mat_path), f"has no dataset {key!r}", where))
                images, depth = f["images"], f[self.depth_field]
                if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8:
                    raise DataError(Problem(SIZE, str(self.mat_path), f"images is {images.dtype}{images.shape}, "
                                            "expected uint8 (N, 3, W, H) as MATLAB v7.3 stores 480x640x3xN", where))
                if depth.shape != (images.shape[0], images.shape[2], images.shape[3]):
                    raise DataError(Problem(SIZE, str(self.mat_path), f"{self.depth_field} is {depth.shape}, "
                                            f"images {images.shape}", where))
                return images.shape[0]
        except OSError as exc:
            raise DataError(Problem(UNREADABLE, str(self.mat_path), f"not an HDF5 (MATLAB v7.3) file: {exc}",
                                    where)) from None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h5"], state["_pid"] = None, None  # h5py handles do not cross processes
        return state

    def _file(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():
            self._h5, self._pid = h5py.File(self.mat_path, "r"), os.getpid()
        return self._h5

    def __len__(self) -> int:
        return len(self.frames)

    def source(self, index: int) -> str:
        return f"{self.source_name}({index + 1}) = frame {self.frames[index]}"

    def depth_file(self, index: int, view: str = "") -> str:
        return f"{self.mat_path}:{self.depth_field}[{self.frames[index]}]"

    def load(self, index: int) -> dict[str, Any]:
        f = self._file()
        frame = int(self.frames[index]) - 1
        try:
            image = np.ascontiguousarray(f["images"][frame].transpose(2, 1, 0))  # (3, W, H) -> (H, W, 3)
            depth = np.ascontiguousarray(f[self.depth_field][frame].T, dtype=np.float32)  # (W, H) -> (H, W)
        except OSError as exc:
            raise DataError(Problem(UNREADABLE, str(self.mat_path), f"frame {frame + 1}: {exc}", self.source(index)))
        if image.shape[:2] != NYU_SIZE:
            raise DataError(Problem(SIZE, str(self.mat_path), f"frame is {image.shape[0]}x{image.shape[1]}, "
                                    f"NYUv2 frames are {NYU_SIZE[0]}x{NYU_SIZE[1]}", self.source(index)))
        depth[~np.isfinite(depth) | (depth < 0)] = 0
        return {"image": image, "depth": depth, "intrinsics": np.array(NYU_INTRINSICS)}


class NYUListDataset(DepthFileDataset):
    """Frames named by a BTS-style list; paths are relative to ``root``.

    Intrinsics: fx = fy = the list's focal, (cx, cy) of the NYU toolbox. Lines whose depth is
    ``None`` are skipped (counted in ``skipped``).
    """

    def __init__(self, list_path: str | os.PathLike, root: str | os.PathLike,
                 augment: DepthAugment | None = None, strict: bool = True) -> None:
        super().__init__(augment)
        self.list_path, self.root = Path(list_path), Path(root)
        entries = read_split_list(self.list_path, self.list_problems)
        if strict:
            self.raise_list_problems()
        self.entries = [e for e in entries if e.depth is not None]
        self.skipped = len(entries) - len(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def source(self, index: int) -> str:
        return self.entries[index].source

    def depth_file(self, index: int, view: str = "") -> str:
        return str(self.root / self.entries[index].depth)

    def source_files(self, index: int) -> dict[str, Path]:
        e = self.entries[index]
        return {"image": self.root / e.rgb, "depth": self.root / e.depth}

    def load(self, index: int) -> dict[str, Any]:
        e = self.entries[index]
        image_path = self.root / e.rgb
        problems: list[Problem] = []  # every problem of the sample, not only the first
        try:
            image = read_rgb(image_path, e.source)
        except DataError as exc:
            problems.extend(exc.problems)
        else:
            if image.shape[:2] != NYU_SIZE:
                problems.append(Problem(SIZE, str(image_path), f"image is {image.shape[0]}x{image.shape[1]}, NYUv2 "
                                        f"frames are {NYU_SIZE[0]}x{NYU_SIZE[1]}", e.source))
        try:
            depth = read_depth_png(self.root / e.depth, DEPTH_PNG_SCALE, e.source, shape=NYU_SIZE)
        except DataError as exc:
            problems.extend(exc.problems)
        if problems:
            raise DataError(problems)
        _, _, cx, cy = NYU_INTRINSICS
        return {"image": image, "depth": depth, "intrinsics": np.array([e.focal_px, e.focal_px, cx, cy])}


class NYUDataModule(FileDataModule):
    """NYU Depth v2 from the labeled ``.mat`` (``format: mat``) or from file lists (``format: list``).

    Validation uses the test split, as BTS, AdaBins and ZoeDepth do: the "val" numbers of a run are
    test numbers; judge checkpoints with that in mind.

    Args:
        format: ``mat`` (official labeled file + splits.mat) or ``list`` (BTS file lists).
        mat_path: ``nyu_depth_v2_labeled.mat`` (``format: mat``).
        splits_path: the official ``splits.mat``.
        train_depth_field, eval_depth_field: ``depths`` (filled) or ``rawDepths`` (with holes; what the
            published evaluation used) for train and for val/test (``format: mat``).
        train_list, test_list: BTS lists (``format: list``); ``train_root``, ``eval_root``: the folders
            their paths are relative to (BTS: ``sync/`` and ``official_splits/test/``).
        batch_size, eval_batch_size, num_workers: DataLoader settings (eval defaults to batch_size).
        train_transforms, eval_transforms: augmentation lists (see :mod:`depthlab.data.transforms`).
    """

    def __init__(
        self,
        format: Literal["mat", "list"] = "mat",
        mat_path: str | None = None,
        splits_path: str = "data/splits/splits.mat",
        train_depth_field: DepthField = "depths",
        eval_depth_field: DepthField = "rawDepths",
        train_list: str = "data/splits/nyudepthv2_train_files_with_gt.txt",
        test_list: str = "data/splits/nyudepthv2_test_files_with_gt.txt",
        train_root: str | None = None,
        eval_root: str | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        train_transforms: list[dict[str, Any]] | None = None,
        eval_transforms: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, train_transforms, eval_transforms)
        if format not in ("mat", "list"):
            raise ConfigError(f"data.format must be 'mat' or 'list', got {format!r}")
        for key, field in (("train_depth_field", train_depth_field), ("eval_depth_field", eval_depth_field)):
            if field not in ("rawDepths", "depths"):
                raise ConfigError(f"data.{key} must be rawDepths or depths, got {field!r}")
        self.format = format
        self.mat_path, self.splits_path = mat_path, splits_path
        self.depth_fields = {"train": train_depth_field, "eval": eval_depth_field}
        self.lists = {"train": train_list, "test": test_list}
        self.roots = {"train": train_root, "eval": eval_root}

    @property
    def provides(self) -> frozenset[str]:
        return view_keys(["image", "depth"], stereo=False) | {"intrinsics", "index"}

    def check_splits(self) -> list[Split]:
        return ["train", "test"]  # val is the test split

    def build(self, split: Split, augment: DepthAugment | None, strict: bool = True) -> DepthFileDataset:
        part = "train" if split == "train" else "test"
        if self.format == "mat":
            if self.mat_path is None:
                raise ConfigError("data.mat_path is not set: point it at nyu_depth_v2_labeled.mat")
            splits_path = resolve_path(self.splits_path)
            frames = read_nyu_splits(splits_path)[part]
            field = self.depth_fields["train" if split == "train" else "eval"]
            return NYUMatDataset(Path(self.mat_path).expanduser(), frames, field, augment,
                                 f"{splits_path}:{_SPLIT_KEYS[part]}")
        root_key = "train" if split == "train" else "eval"
        root = require_dir(self.roots[root_key], f"data.{root_key}_root")
        return NYUListDataset(resolve_path(self.lists[part]), root, augment, strict)
