"""What the file-backed data sets share on top of the sample pipeline (``data/pipeline.py``):
per-sample problem reports for ``depthlab data check``, split lists, and their data modules' set-up.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np

from depthlab.data.keys import VIEWS
from depthlab.data.loading import Split, SplitDataModule
from depthlab.data.pipeline import SampleDataset, to_tensors  # noqa: F401  (to_tensors: re-exported)
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
    """``name`` (``eigen_test_files_with_gt.txt``, ``monodepth2/eigen_zhou/train_files.txt``) among
    the split lists installed with depthlab (a wheel's ``depthlab/_splits/``)."""
    shipped = resources.files("depthlab").joinpath(SPLITS_PACKAGE_DIR, *PurePosixPath(name).parts)
    # Installed packages are plain folders; a zipped install would need as_file(), not worth it.
    return shipped if isinstance(shipped, Path) and shipped.is_file() else None


def resolve_path(path: str | Path) -> Path:
    """A configured path. A relative one that does not exist under the working directory is looked
    up among the files depthlab ships, so ``data/splits/...`` in a config works from any directory:
    ``data/splits/<name>`` (``<name>`` may hold folders: ``monodepth2/eigen_zhou/train_files.txt``)
    in the installed package data (wheel install), then the path under the
    depthlab checkout (source checkout, editable install). Otherwise the path is returned as given
    (the reader then reports it missing)."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path
    parts = PurePosixPath(path.as_posix()).parts
    if parts[:len(SHIPPED_SPLITS.parts)] == SHIPPED_SPLITS.parts and len(parts) > len(SHIPPED_SPLITS.parts):
        installed = _installed_split("/".join(parts[len(SHIPPED_SPLITS.parts):]))
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


class DepthFileDataset(SampleDataset):
    """A split of a data set on disk. Subclasses implement ``__len__``, :meth:`load` and :meth:`source`.

    ``list_problems``: the malformed lines of its split list, skipped (a dataset built with
    ``strict=True``, as for training, raises them instead; ``depthlab data check`` reports them with
    the problems of the other lines' samples).
    """

    def __init__(self, augment: DepthAugment | None = None) -> None:
        super().__init__(augment)
        self.list_problems: list[Problem] = []

    def raise_list_problems(self) -> None:
        if self.list_problems:
            raise DataError(self.list_problems)

    def audit(self, index: int) -> list[Problem]:
        """Extra consistency checks run by ``depthlab data check`` only (none by default)."""
        return []

    def depth_file(self, index: int, view: str = "") -> str:
        """The file that holds the ground truth of sample ``index``'s view (``""`` or ``"_right"``)."""
        raise NotImplementedError

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
