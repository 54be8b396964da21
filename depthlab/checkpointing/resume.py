"""Resuming a run: what Lightning's checkpoint leaves out, and what ``--ckpt_path`` means.

Lightning restores the weights, optimizer, LR scheduler (its step count; the schedule's length is
re-planned from ``max_epochs``/``max_steps``, so those must stay the same), epoch and step. The data
order is the data module's state (``depthlab.data.loading.SplitDataModule``). :class:`ExactResume`
adds the global RNG states. :func:`prepare_ckpt_path` checks the checkpoint before Lightning reads it
and finds this config's latest ``last.ckpt`` for ``--ckpt_path last``.
"""

from __future__ import annotations

import glob
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from depthlab.checkpointing.io import SPECIAL_CKPT_PATHS, check_checkpoint, is_local
from depthlab.errors import ConfigError


def rng_states() -> dict[str, Any]:
    """torch (and CUDA), NumPy and Python RNG states, in types ``torch.load(weights_only=True)`` reads."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


class ExactResume(L.Callback):
    """Saves the global RNG states in every checkpoint and puts them back when a resumed run starts
    training, so that anything drawing from them (dropout, augmentation in the main process) continues
    as in an uninterrupted run.

    Put back in ``on_train_start``: after the sanity check and the data loader set-up, which draw from
    them in the resumed run as they did at the start of the first one. Under DDP every process gets the
    saved (rank 0's) states: ``seed_everything`` gives every process the same seed, and they draw alike.

    Also warns when the resumed run plans another number of optimizer steps than the saved one
    (``max_epochs``/``max_steps`` changed): step-based LR schedules are planned over that number.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, Any] | None = None
        self._planned: int | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_states(), "planned_steps": self._planned}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        planned = trainer.estimated_stepping_batches
        self._planned = int(planned) if planned != float("inf") else None
        loaded, self._loaded = self._loaded, None
        if not loaded:
            return
        set_rng_states(loaded["rng"])
        if loaded.get("planned_steps") is not None and loaded["planned_steps"] != self._planned:
            rank_zero_warn(f"depthlab: the checkpoint's run was planned for {loaded['planned_steps']} optimizer steps, "
                           f"this one for {self._planned} (max_epochs/max_steps changed): step-based LR schedules "
                           "follow the new length")


def _first_logger(trainer: Any) -> Any:
    logger = trainer.get("logger")
    if isinstance(logger, list):
        return logger[0] if logger else None
    return logger


def last_checkpoint_pattern(config: Any) -> str | None:
    """Where a config's ``last.ckpt`` files are, as a glob pattern; None for a logger whose layout is
    unknown here (Lightning's own ``"last"`` lookup then applies).

    ``last_checkpoint.dirpath`` when set; else where ``ModelCheckpoint`` puts checkpoints: the first
    logger's ``<save_dir>/<name>/<version>/checkpoints`` (any version unless the config fixes one), or
    ``<default_root_dir>/checkpoints`` with ``logger: false``.
    """
    trainer = config.get("trainer") or {}
    dirpath = (config.get("last_checkpoint") or {}).get("dirpath")
    if dirpath:
        return str(Path(dirpath) / "last.ckpt")
    root_dir = Path(trainer.get("default_root_dir") or ".")
    logger = _first_logger(trainer)
    if logger is False:
        return str(root_dir / "checkpoints" / "last.ckpt")
    if logger is None or logger is True:  # Lightning's default TensorBoardLogger
        return str(root_dir / "lightning_logs" / "*" / "checkpoints" / "last.ckpt")
    args = getattr(logger, "init_args", None)
    if args is None or not all(key in args for key in ("save_dir", "name", "version")):
        return None
    version = args.version
    version_dir = "*" if version is None else version if isinstance(version, str) else f"version_{version}"
    return str(Path(args.save_dir or root_dir) / (args.name or "") / version_dir / "checkpoints" / "last.ckpt")


def find_last(config: Any) -> Path | None:
    """This config's newest ``last.ckpt`` (see :func:`last_checkpoint_pattern`), or None.

    Lightning's ``ckpt_path="last"`` looks in the checkpoint directory of the run being started,
    which for a versioned logger is a new, empty ``version_N``: it never finds the run to resume.
    """
    pattern = last_checkpoint_pattern(config)
    found = [Path(p) for p in glob.glob(pattern)] if pattern else []
    found = [p for p in found if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def prepare_ckpt_path(config: Any) -> None:
    """Resolve and check ``<subcommand>.ckpt_path`` of a parsed CLI config, in place.

    ``last``: this config's newest ``last.ckpt`` (:func:`find_last`); ``fit`` continues in that run's
    logger version directory (the logger's ``version`` is set to it), so its checkpoints, best-k
    bookkeeping and TensorBoard curves stay one run. With none yet, ``fit`` starts a new run (a job
    script can always pass ``--ckpt_path last``) and the other commands stop with an error. A file
    path is checked by :func:`~depthlab.checkpointing.io.check_checkpoint`.
    """
    subcommand = config.get("subcommand")
    if not subcommand:
        return
    sub = config[subcommand]
    ckpt_path = sub.get("ckpt_path")
    if not ckpt_path:
        return
    if ckpt_path == "last":
        pattern = last_checkpoint_pattern(sub)
        if pattern is None:
            return
        path = find_last(sub)
        if path is None:
            if subcommand != "fit":
                raise ConfigError(f"--ckpt_path last: this config has no last.ckpt yet (looked for {pattern})")
            rank_zero_info(f"depthlab: --ckpt_path last: no {pattern} yet: starting a new run")
            sub.ckpt_path = None
            return
        sub.ckpt_path = str(path)
        args = getattr(_first_logger(sub.trainer), "init_args", None)
        if subcommand == "fit" and args is not None and args.version is None:
            args.version = path.parent.parent.name
        rank_zero_info(f"depthlab: --ckpt_path last: {path}")
    elif ckpt_path in SPECIAL_CKPT_PATHS or not is_local(ckpt_path):
        return  # resolved (and read through AtomicCheckpointIO, which checks it too) by Lightning
    check_checkpoint(sub.ckpt_path, resume=subcommand == "fit")
