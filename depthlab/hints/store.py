"""Hint files on disk: atomic writes and the ``manifest.json`` that says how a hints folder was made.

Each hint is one float32 ``.npy`` of shape (1, H, W), metres, 0 = no hint, at the
image's full-frame size; the data set defines the layout under the hints root (``docs/hints.md``).
``manifest.json`` at the root records the SGM settings, the matching size, the fusion rule and the
data it was made from; a later run with other values is refused instead of mixing two kinds of
hints in one folder (:func:`claim_hints_root`). Reading is ``depthlab.data.readers.read_hint``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from depthlab.errors import ConfigError
from depthlab.hints.sgm import SGMSetting

MANIFEST_NAME = "manifest.json"
FORMAT = "depthlab hints 1: float32 .npy (1, H, W) metres per image, 0 = no hint"
FUSION = ("per pixel min of 0.85 (1 - SSIM)/2 + 0.15 L1 of the other view warped by the candidate; "
          "candidates <= 0 excluded")
PARTIAL_SUFFIX = ".partial"  # a file being written; renamed when complete
#: Manifest fields that must agree for two runs to share a folder (version and date may differ).
COMPARED_FIELDS = ("format", "fusion", "sgm_settings", "compute_size", "data")


def partial_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place: the same folder, so os.replace is atomic."""
    return path.with_name(path.name + PARTIAL_SUFFIX)


def save_hint(path: Path, depth_m: np.ndarray) -> None:
    """Write an (H, W) depth map in metres as float32 (1, H, W) ``.npy`` at ``path``, atomically: a
    killed process leaves at most ``<path>.partial``, never a half-written ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    with open(partial, "wb") as f:  # a file object: np.save would append ".npy" to a name
        np.save(f, np.asarray(depth_m, dtype=np.float32)[None])
    os.replace(partial, path)


def make_manifest(settings: Sequence[SGMSetting], size: Sequence[int] | None, data: Mapping[str, Any],
                  layout: str, settings_choice: str) -> dict[str, Any]:
    """The manifest of a hints folder. ``data`` identifies the images (data set and, for the
    synthetic scenes, everything that changes them); ``size`` is the matching size or None (native)."""
    from depthlab import __version__

    return {
        "format": FORMAT,
        "depthlab_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "layout": layout,
        "fusion": FUSION,
        "settings_choice": settings_choice,
        "sgm_settings": [setting.as_dict() for setting in settings],
        "compute_size": None if size is None else [int(size[0]), int(size[1])],
        "data": dict(data),
    }


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of hints folder ``root`` (None when it has none)."""
    path = root / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable manifest ({exc})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: not a depthlab hints manifest (a JSON object)")
    return values


def _short(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], dict):  # SGM settings
        return f"{len(value)} settings [" + ", ".join(SGMSetting.from_dict(v).label() for v in value) + "]"
    return json.dumps(value) if value is not None else "native size"


def manifest_differences(found: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """The compared fields on which two manifests disagree, each as ``field: folder X, now Y``."""
    return [f"{key}: folder {_short(found.get(key))}, now {_short(wanted.get(key))}"
            for key in COMPARED_FIELDS if found.get(key) != wanted.get(key)]


def _create_json(path: Path, values: Mapping[str, Any]) -> bool:
    """Write ``path`` unless it exists, atomically and exclusively: of processes racing to create it
    (shards of one precompute starting together) exactly one wins (True); the others get False and
    read the winner's file. ``os.link`` fails on an existing name, unlike ``os.replace``."""
    text = json.dumps(values, indent=2) + "\n"
    partial = path.with_name(f"{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")
    partial.write_text(text)
    try:
        os.link(partial, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: exclusive creation, written in place
        try:
            with open(path, "x") as f:
                f.write(text)
        except FileExistsError:
            return False
    finally:
        partial.unlink()
    return True


def claim_hints_root(root: Path, manifest: Mapping[str, Any]) -> bool:
    """Make ``root`` the folder of hints described by ``manifest``: write it there when the folder
    is new (returns True), accept a folder with an equal manifest (False), refuse anything else
    with a :class:`ConfigError` naming what differs. Shards of one run claim the same folder: the
    first writes the manifest, the others join it (or are refused) as later runs are."""
    found = read_manifest(root)
    if found is None:
        if root.is_dir() and next(root.rglob("*.npy"), None) is not None:
            raise ConfigError(f"hints folder {root} holds .npy files but no {MANIFEST_NAME}: made by something "
                              "else, so not resumed or mixed; give another hints_root or empty it")
        root.mkdir(parents=True, exist_ok=True)
        if _create_json(root / MANIFEST_NAME, manifest):
            return True
        found = read_manifest(root)  # another shard wrote it first
    differences = manifest_differences(found, manifest)
    if differences:
        raise ConfigError(f"hints folder {root} was made with other settings ({'; '.join(differences)}); "
                          "give another hints_root or delete that folder")
    return False


def check_hints_data(root: Path, data: Mapping[str, Any], key: str) -> None:
    """Refuse hints made from other data (``data`` as in :func:`make_manifest`) at load time; a
    folder without a manifest is accepted (each file is still checked against its image)."""
    found = read_manifest(root)
    if found is not None and found.get("data") != dict(data):
        raise ConfigError(f"{key}: {root / MANIFEST_NAME} was made from other data "
                          f"({_short(found.get('data'))}, this module: {_short(dict(data))})")
