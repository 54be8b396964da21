"""What the file-backed data sets share: NumPy sample -> augmentation -> :class:`DepthSample` tensors,
per-sample problem reports for ``depthlab data check``, and their data modules' set-up.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from depthlab.data.batch import DepthSample
from depthlab.data.keys import VIEW_KEYS, VIEWS, complete_stereo_pairs
from depthlab.data.loading import Split, SplitDataModule
from depthlab.data.readers import NO_DEPTH, DataError, Problem
from depthlab.data.transforms import DepthAugment
from depthlab.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
# The shipped split lists: data/splits/ at the repository root, installed as the package data of
# depthlab._splits (pyproject's package-dir), so a wheel install has them too.
SHIPPED_SPLITS = PurePosixPath("data/splits")
SPLITS_PACKAGE_DIR = "_splits"  # depthlab/_splits/ in an installed wheel

# Each DataLoader worker is one decoding process: OpenCV's own thread pool would oversubscribe the
# cores. Set once here, in the parent, so forked workers inherit it: calling cv2.setNumThreads in
# a worker_init_fn deadlocks when the parent has already started OpenCV's pool before the fork.
cv2.setNumThreads(1)


def _installed_split(name: str) -> Path | None:
    """``name`` among the split lists installed with depthlab (a wheel's ``depthlab/_splits/``)."""
    shipped = resources.files("depthlab").joinpath(SPLITS_PACKAGE_DIR, name)
    # Installed packages are plain folders; a zipped install would need as_file(), not worth it.
    return shipped if isinstance(shipped, Path) and shipped.is_file() else None


def resolve_path(path: str | Path) -> Path:
    """A configured path. A relative one that does not exist under the working directory is looked
    up among the files depthlab ships, so ``data/splits/...`` in a config works from any directory:
    ``data/splits/<name>`` in the installed package data (wheel install), then the path under the
    depthlab checkout (source checkout, editable install). Otherwise the path is returned as given
    (the reader then reports it missing)."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path
    parts = PurePosixPath(path.as_posix()).parts
    if parts[:-1] == SHIPPED_SPLITS.parts:
        installed = _installed_split(parts[-1])
        if installed is not None:
            return installed
    shipped = REPO_ROOT / path
    return shipped if shipped.exists() else path


def require_dir(path: str | Path | None, key: str) -> Path:
    if path is None:
        raise ConfigError(f"{key} is not set: point it at the data set's root folder")
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{key}: folder {path} does not exist (edit the data paths in your config)")
    return path


def to_tensors(sample: dict[str, Any]) -> DepthSample:
    """NumPy sample (HWC uint8 images, HW float32 depth-like maps) -> :class:`DepthSample` (CHW tensors).

    Per-view maps follow ``keys.VIEW_KEYS``: images become (3, H, W) float32 in [0, 1]; every
    depth-kind map (1, H, W) float32 with 0 where it is not finite or not > 0, and its validity mask
    (``valid``, ``hint_valid``, ...) is recomputed from the final values.
    """
    out: dict[str, Any] = {}
    for vk in VIEW_KEYS:
        for view in VIEWS:
            key = vk.key(view)
            if key not in sample:
                continue
            if vk.kind == "image":
                image = np.ascontiguousarray(sample[key])
                scale = 255.0 if image.dtype == np.uint8 else 1.0
                out[key] = torch.from_numpy(image).permute(2, 0, 1).float().div_(scale)
            else:
                values = np.asarray(sample[key], dtype=np.float32)
                valid = np.isfinite(values) & (values > 0)
                out[key] = torch.from_numpy(np.where(valid, values, np.float32(0)))[None]
                out[vk.valid_key(view)] = torch.from_numpy(valid)[None]
    if "intrinsics" in sample:
        out["intrinsics"] = torch.as_tensor(np.asarray(sample["intrinsics"], dtype=np.float32))
    if "baseline_m" in sample:
        out["baseline_m"] = torch.tensor(float(sample["baseline_m"]), dtype=torch.float32)
    for key in ("crop_offset", "full_size", "index"):
        if key in sample:
            out[key] = torch.as_tensor(np.asarray(sample[key], dtype=np.int64))
    return DepthSample(**out)


class DepthFileDataset(Dataset):
    """A split of a data set on disk. Subclasses implement ``__len__``, :meth:`load` and :meth:`source`.

    ``list_problems``: the malformed lines of its split list, skipped (a dataset built with
    ``strict=True``, as for training, raises them instead; ``depthlab data check`` reports them with
    the problems of the other lines' samples).
    """

    def __init__(self, augment: DepthAugment | None = None) -> None:
        self.augment = augment
        self.list_problems: list[Problem] = []

    def raise_list_problems(self) -> None:
        if self.list_problems:
            raise DataError(self.list_problems)

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> dict[str, Any]:
        """The raw sample as NumPy arrays (before augmentation); raises :class:`DataError`."""
        raise NotImplementedError

    def source(self, index: int) -> str:
        """Where sample ``index`` comes from: ``list.txt:LINENO``."""
        raise NotImplementedError

    def audit(self, index: int) -> list[Problem]:
        """Extra consistency checks run by ``depthlab data check`` only (none by default)."""
        return []

    def depth_file(self, index: int, view: str = "") -> str:
        """The file that holds the ground truth of sample ``index``'s view (``""`` or ``"_right"``)."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> DepthSample:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        sample = complete_stereo_pairs(self.load(index))
        if self.augment is not None:
            sample = self.augment(sample)
        sample["index"] = index
        return to_tensors(sample)

    def problems(self, index: int) -> list[Problem]:
        """Everything wrong with sample ``index`` that one look can see: every load error (readers
        collect all of a sample's, not only the first), a ground truth without one valid pixel, and
        :meth:`audit` findings."""
        try:
            sample = self.load(index)
        except DataError as exc:
            found = list(exc.problems) or [Problem("error", "?", str(exc), self.source(index))]
        else:
            found = []
            for view in VIEWS:
                depth = sample.get(f"depth{view}")
                if depth is not None and not (np.isfinite(depth) & (depth > 0)).any():
                    where = " in the KB crop" if getattr(self, "kb_crop", False) else ""
                    found.append(Problem(NO_DEPTH, self.depth_file(index, view), f"no pixel > 0{where}",
                                         self.source(index)))
        return found + self.audit(index)


class FileDataModule(SplitDataModule):
    """DataLoaders over :class:`DepthFileDataset` splits built by :meth:`build` (subclasses)."""

    def __init__(
        self,
        batch_size: int,
        eval_batch_size: int | None,
        num_workers: int,
        train_transforms: list[dict[str, Any]] | None,
        eval_transforms: list[dict[str, Any]] | None,
    ) -> None:
        super().__init__()
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ConfigError(f"data: batch sizes must be >= 1, got {batch_size} and {eval_batch_size}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        # Built now so that a wrong transform fails at start-up, not in a worker.
        self.train_augment = DepthAugment.from_config(train_transforms, "data.train_transforms")
        self.eval_augment = DepthAugment.from_config(eval_transforms, "data.eval_transforms")
        self._datasets: dict[str, DepthFileDataset] = {}

    def build(self, split: Split, augment: DepthAugment | None, strict: bool = True) -> DepthFileDataset:
        """The dataset of ``split``; ``strict=False``: malformed list lines are kept in its
        ``list_problems`` instead of raised (``depthlab data check``)."""
        raise NotImplementedError

    def check_splits(self) -> list[Split]:
        """The distinct splits ``depthlab data check`` walks (val is left out when it is the test list)."""
        return ["train", "val", "test"]

    def dataset(self, split: Split) -> DepthFileDataset:
        if split not in self._datasets:
            self._datasets[split] = self.build(split, self.train_augment if split == "train" else self.eval_augment)
        return self._datasets[split]

    def setup(self, stage: str | None = None) -> None:
        needed = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"], "predict": ["test"]}
        for split in needed.get(stage or "", ["train", "val", "test"]):
            self.dataset(split)  # type: ignore[arg-type]
