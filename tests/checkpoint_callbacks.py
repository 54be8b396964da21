"""Callbacks the checkpointing tests put into ``depthlab fit`` runs by class path (also in subprocesses:
the tests put this directory on PYTHONPATH)."""

from __future__ import annotations

import json
import os
import signal as signals

import lightning as L


class SignalAt(L.Callback):
    """Sends ``signal`` (a name: SIGTERM, SIGINT, SIGUSR1) once ``global_step`` reaches ``step``: to this
    process, or with ``group`` to its whole process group (as ``scancel`` or Ctrl+C in a terminal)."""

    def __init__(self, step: int, signal: str = "SIGTERM", group: bool = False) -> None:
        self.step, self.signum, self.group = step, getattr(signals, signal), group

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step == self.step:
            self.step = -1  # once
            if self.group:
                os.killpg(os.getpgid(0), self.signum)
            else:
                os.kill(os.getpid(), self.signum)


class WorseningMetric(L.Callback):
    """Logs ``worsening`` = the epoch number after each validation: monitored with mode ``min``, the
    first epoch stays the best one, as a validation metric that stops improving."""

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log("worsening", float(trainer.current_epoch))


class RecordSetup(L.Callback):
    """Writes ``setup.json`` (in the working directory) at the first training step: the SIGINT, SIGTERM
    and SIGUSR1 handlers in force (their class and method names) and the CheckpointIO plugin's class."""

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if os.path.exists("setup.json"):
            return

        def name(handler: object) -> str:
            owner = getattr(handler, "__self__", None)
            return f"{type(owner).__name__}.{handler.__name__}" if owner is not None else type(handler).__name__

        record = {s: name(signals.getsignal(getattr(signals, s))) for s in ("SIGINT", "SIGTERM", "SIGUSR1")}
        record["checkpoint_io"] = type(trainer.strategy.checkpoint_io).__name__
        with open("setup.json", "w") as f:
            json.dump(record, f)


class LastStepSeen(L.Callback):
    """Records, at the end of every step, which step ``last.ckpt`` held then (None: no file yet). Runs
    before that step's own save: Lightning calls checkpoint callbacks last."""

    seen: dict[int, int | None] = {}

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        import torch

        (last,) = [cb for cb in trainer.checkpoint_callbacks if type(cb).__name__ == "LastCheckpoint"]
        path = os.path.join(last.dirpath, "last.ckpt")
        held = torch.load(path, map_location="cpu", weights_only=True)["global_step"] if os.path.exists(path) else None
        LastStepSeen.seen[trainer.global_step] = held
