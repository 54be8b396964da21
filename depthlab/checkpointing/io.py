"""Writing and reading checkpoint files: atomic saves, and one clear error for a file that is not a
usable checkpoint.

Lightning's ``TorchCheckpointIO`` serialises into memory and writes through an ``fsspec``
transaction, whose temporary file lives in the system temp dir (``/tmp``): the whole checkpoint must
fit there, and when ``/tmp`` is another file system the final move is a copy, which a kill can leave
half done at the checkpoint's own path. :class:`AtomicCheckpointIO` writes ``<path>.tmp`` beside the
checkpoint, syncs it and renames it over ``<path>``: at every moment ``<path>`` is the previous
complete checkpoint or the new complete one.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch
from fsspec.utils import get_protocol
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from depthlab.errors import ConfigError

# Lightning's ckpt_path values that name no file (resolved by Lightning itself).
SPECIAL_CKPT_PATHS = ("last", "best", "hpc")


def is_local(path: _PATH) -> bool:
    return get_protocol(str(path)) in ("file", "local")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves are atomic on a local disk and whose loads name what is wrong.

    Save: ``torch.save`` streams into ``<path>.tmp`` (no second copy in memory), which is flushed to
    disk and renamed over ``<path>`` (``os.replace``: atomic on POSIX and Windows); then the directory is
    synced so the rename itself survives a power cut. A failure or kill at any point leaves the
    previous ``<path>`` as it was. Remote paths (``s3://``...) use Lightning's save.

    Load: :func:`read_checkpoint` (weights only); a missing, empty, truncated or foreign file is a
    :class:`~depthlab.errors.ConfigError` naming the file and what is wrong with it.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None or not is_local(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = os.fspath(path)
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, exist_ok=True)
        tmp = path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        _fsync_directory(directory)

    def load_checkpoint(
        self,
        path: _PATH,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        if not is_local(path) or Path(path).is_dir():  # remote, or sharded (read by its strategy)
            try:
                checkpoint = super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
            except Exception as exc:
                raise ConfigError(f"checkpoint {path}: {_unreadable(path, exc)}") from exc
            check_contents(checkpoint, path)
            return checkpoint
        return read_checkpoint(path, map_location=map_location)


def _fsync_directory(directory: str) -> None:
    # Not possible on every platform (Windows cannot open a directory); the rename is atomic without it.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_file(path: _PATH) -> None:
    """The checks that need no loading: the file exists, is not empty, is not cut short."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"checkpoint {path}: no such file")
    if p.is_dir():
        return  # sharded checkpoints (DeepSpeed, FSDP) are directories: their strategy reads them
    size = p.stat().st_size
    if size == 0:
        raise ConfigError(f"checkpoint {path}: the file is empty (0 bytes): the save that wrote it did not finish")
    with open(p, "rb") as f:
        zip_magic = f.read(4) == b"PK\x03\x04"
    # torch.save writes a zip archive whose index is at its end: a cut-short file has no index.
    if zip_magic and not zipfile.is_zipfile(p):
        raise ConfigError(f"checkpoint {path}: truncated ({size} bytes, its zip index is missing): "
                          "the save that wrote it did not finish")


def check_contents(checkpoint: Any, path: _PATH, resume: bool = False) -> None:
    """A loaded object is a Lightning checkpoint (and with ``resume``, one a run can continue from)."""
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        what = type(checkpoint).__name__
        if isinstance(checkpoint, dict):
            tensors = sum(isinstance(v, torch.Tensor) for v in checkpoint.values())
            what = f"a dict of {tensors} tensors (a bare state_dict?)" if tensors else f"a dict with keys {sorted(checkpoint)[:5]}"
        raise ConfigError(f"checkpoint {path}: not a Lightning checkpoint (no 'state_dict' entry; it holds {what})")
    if resume and not {"optimizer_states", "loops"} <= checkpoint.keys():
        raise ConfigError(f"checkpoint {path}: holds the weights only (save_weights_only): training cannot resume "
                          "from it; validate, test and predict can use it")


def read_checkpoint(path: _PATH, map_location: Any = "cpu", resume: bool = False, lightning: bool = True,
                    mmap: bool = False) -> Any:
    """The one reader of checkpoint files in depthlab: ``torch.load(weights_only=True)`` (tensors and
    plain Python values, never pickled code), with one :class:`ConfigError` naming ``path`` and its defect.

    Missing, empty, truncated, not a PyTorch file; with ``lightning`` (the default) also not a
    Lightning checkpoint (no ``state_dict``), and with ``resume`` a weights-only one (``fit`` cannot
    continue from it). ``lightning=False`` returns whatever the file holds (e.g. a bare state dict).
    ``mmap``: map the tensors instead of reading them (cheap when only the hyper-parameters matter).
    """
    check_file(path)
    if Path(path).is_dir():
        raise ConfigError(f"checkpoint {path}: a directory (a sharded checkpoint): its strategy reads it, not depthlab")
    try:
        checkpoint = torch.load(path, map_location=map_location, mmap=mmap and zipfile.is_zipfile(path),
                                weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds for a file that is not a checkpoint
        raise ConfigError(f"checkpoint {path}: {_unreadable(path, exc)}") from None
    if lightning:
        check_contents(checkpoint, path, resume)
    return checkpoint


def check_checkpoint(path: _PATH, resume: bool = False) -> None:
    """Raise one :class:`ConfigError` naming ``path`` and its defect, before Lightning touches it.

    Missing, empty, truncated, not a PyTorch file, not a Lightning checkpoint, and (``resume``: for
    ``fit``) weights only: :func:`read_checkpoint`, memory-mapped (the tensors are not read, so this
    costs little next to the load that follows). A directory (sharded checkpoint) is left to its strategy.
    """
    check_file(path)
    if Path(path).is_dir():
        return
    read_checkpoint(path, resume=resume, mmap=True)


def _unreadable(path: _PATH, exc: Exception) -> str:
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if is_local(path) and not zipfile.is_zipfile(path):
        return f"not a readable checkpoint: not a PyTorch checkpoint file (torch.load: {first_line})"
    return f"not a readable checkpoint (torch.load: {first_line})"
