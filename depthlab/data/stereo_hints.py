"""Depth Hints in a stereo data module, written once for every such module (KITTI, synthetic).

A module with this mixin sets ``hints_root`` (None: no hints), the class attribute ``hint_layout``
(where a frame's hint lives under the folder, for the manifest and the docs), ``hints_data`` (what
identifies its images in the folder's ``manifest.json``) and ``hint_jobs(split)`` (the stereo pairs
``depthlab hints precompute`` computes hints for). Its data sets read the hints of a sample with
:func:`read_hints`, in ``load``, so they are cut and augmented exactly as ``depth``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from depthlab.errors import ConfigError, DataError, Problem

HINTS_ROOT_KEY = "data.hints_root"


class StereoHintsMixin:
    """Depth Hints plumbing of a stereo data module (see the module docstring)."""

    hints_root: str | None
    hint_layout: ClassVar[str]

    @property
    def hints_data(self) -> Mapping[str, Any]:
        """What identifies this module's images in a hints folder's manifest (its ``data``)."""
        raise NotImplementedError

    def hint_jobs(self, split: str) -> list[Any]:
        """The stereo pairs of ``split`` (objects with ``source``, ``outputs`` and ``read()``)."""
        raise NotImplementedError

    def hints_folder(self) -> Path | None:
        """The hints folder, checked: it exists, and its manifest (if any) was made from this module's
        data. None without ``hints_root``."""
        if self.hints_root is None:
            return None
        from depthlab.hints.store import check_hints_data  # the hints package pulls in OpenCV

        root = Path(self.hints_root).expanduser()
        if not root.is_dir():
            raise ConfigError(f"{HINTS_ROOT_KEY}: folder {root} does not exist "
                              "(run 'depthlab hints precompute' to fill it)")
        check_hints_data(root, self.hints_data, HINTS_ROOT_KEY)
        return root


def read_hints(root: Path, files: Mapping[str, str], shape: tuple[int, int] | None, source: str) -> dict[str, np.ndarray]:
    """The hint maps of one sample: ``files`` maps a sample key (``hint``, ``hint_right``) to its file
    under ``root``; each (H, W) float32 metres at ``shape`` (None: size not checked, the image being
    unreadable). Every bad file of the sample is reported in one :class:`DataError`."""
    from depthlab.data.readers import read_hint

    maps: dict[str, np.ndarray] = {}
    problems: list[Problem] = []
    for key, relpath in files.items():
        try:
            maps[key] = read_hint(root / relpath, shape, source)
        except DataError as exc:
            problems.extend(exc.problems)
    if problems:
        raise DataError(problems)
    return maps
