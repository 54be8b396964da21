"""Checkpoints that hold the truth, exact resume, and preemption (docs/training.md).

- :class:`AtomicCheckpointIO` (``io.py``): the default ``CheckpointIO`` plugin. A checkpoint is
  written beside its path and renamed over it; a missing, empty, truncated or foreign checkpoint is
  one :class:`~depthlab.errors.ConfigError` naming the file.
- :class:`LastCheckpoint` (``last.py``): ``last.ckpt`` is the state the run ended in, however it ended.
- :class:`ExactResume` (``resume.py``): RNG states through checkpoints; ``--ckpt_path last`` finds
  the config's latest run. The data order is the data module's state (``depthlab.data.loading``).
- :class:`GracefulStop` (``preemption.py``): SIGINT stops like SIGTERM (end of step, ``last.ckpt``,
  exit status 128 + signal); DataLoader workers ignore both.

``depthlab.parser.DepthCLI`` adds all of them to every command through :func:`trainer_defaults`.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.utilities import rank_zero_info

from depthlab.checkpointing.io import AtomicCheckpointIO, check_checkpoint, read_checkpoint
from depthlab.checkpointing.last import LastCheckpoint
from depthlab.checkpointing.preemption import GracefulStop, exit_status
from depthlab.checkpointing.resume import ExactResume, find_last, prepare_ckpt_path

__all__ = [
    "AtomicCheckpointIO",
    "ExactResume",
    "GracefulStop",
    "LastCheckpoint",
    "check_checkpoint",
    "exit_status",
    "find_last",
    "prepare_ckpt_path",
    "read_checkpoint",
    "trainer_defaults",
]


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def trainer_defaults(trainer: Any, last_checkpoint: LastCheckpoint | None) -> dict[str, list]:
    """The ``plugins`` and ``callbacks`` Trainer arguments with depthlab's checkpointing added to the
    configured ones (``trainer``: the instantiated ``trainer`` section of a CLI config).

    - :class:`AtomicCheckpointIO`, unless a ``CheckpointIO`` is configured already (in ``plugins``, or
      on a strategy object: Lightning refuses two).
    - ``last_checkpoint`` after the configured callbacks (its epoch-end save comes after theirs),
      unless ``enable_checkpointing`` is false (then every ``ModelCheckpoint`` of the config is left
      out: no checkpoints at all); then :class:`ExactResume` and :class:`GracefulStop`.
    """
    plugins = _as_list(trainer.get("plugins"))
    strategy = trainer.get("strategy")
    if not any(isinstance(p, CheckpointIO) for p in plugins) and getattr(strategy, "_checkpoint_io", None) is None:
        plugins.append(AtomicCheckpointIO())
    callbacks = _as_list(trainer.get("callbacks"))
    if trainer.get("enable_checkpointing") is False:
        # no checkpoints at all: the base config's ModelCheckpoint goes too (Lightning refuses both)
        dropped = [cb for cb in callbacks if isinstance(cb, ModelCheckpoint)]
        callbacks = [cb for cb in callbacks if not isinstance(cb, ModelCheckpoint)]
        if dropped:
            rank_zero_info(f"depthlab: trainer.enable_checkpointing false: no checkpoints are written "
                           f"({len(dropped)} ModelCheckpoint callback(s) of the config left out)")
    elif last_checkpoint is not None:
        callbacks.append(last_checkpoint)
    callbacks += [ExactResume(), GracefulStop()]
    return {"plugins": plugins, "callbacks": callbacks}
