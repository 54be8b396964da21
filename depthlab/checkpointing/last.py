"""``last.ckpt``: the state a run is in when it stops, however it stops."""

from __future__ import annotations

import os
import signal

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from depthlab.checkpointing import preemption
from depthlab.errors import ConfigError


class LastCheckpoint(ModelCheckpoint):
    """Writes ``last.ckpt`` at the end of every epoch, every ``every_n_train_steps`` steps (when set),
    when training ends (``max_epochs``, or ``max_steps`` part-way through an epoch) and when it is
    stopped by SIGTERM/SIGINT or an exception, with one log line saying so.

    Lightning's ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only beside a top-k save: once
    the monitored metric stops improving, ``last.ckpt`` stops moving, and a run ended by ``max_steps``
    or a signal has no checkpoint of its end. This callback is the one writer of ``last.ckpt``; it
    switches ``save_last`` off on the other checkpoint callbacks (two writers of one file would make
    ``last-v1.ckpt``). Their best-k files are theirs; the epoch-end save here comes after them (the
    CLI adds this callback last), so ``last.ckpt`` holds their bookkeeping too. It is a
    ``ModelCheckpoint`` (``monitor=None``, one file, ``last``) so that Lightning's ``ckpt_path="last"``
    finds it.

    Not saved on an exception: after a second Ctrl+C (a ``KeyboardInterrupt`` can land half-way
    through an optimizer step), when the weights are not finite (keeping the last good state), and
    under DDP for exceptions other than a stop signal (only signals reach every process; a save from
    one would wait for the others forever).

    Args:
        dirpath: where ``last.ckpt`` goes (default as ``ModelCheckpoint``: ``<logger dir>/checkpoints``).
        every_n_train_steps: also save every so many optimizer steps; bounds the work lost to a hard
            kill, which sends no signal. ``None``: at epoch ends only.
    """

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int | None = None) -> None:
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ConfigError(f"last_checkpoint.every_n_train_steps: expected a step count >= 1 or null, "
                              f"got {every_n_train_steps}")
        super().__init__(dirpath=dirpath, filename=self.CHECKPOINT_NAME_LAST, monitor=None, save_top_k=1,
                         enable_version_counter=False)
        self.every_n_train_steps = every_n_train_steps
        self._first_step: int | None = None  # global_step when this process started training

    @property
    def path(self) -> str:
        return os.path.join(self.dirpath or "", self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        others = [cb for cb in trainer.checkpoint_callbacks
                  if cb is not self and isinstance(cb, ModelCheckpoint) and cb.save_last]
        for cb in others:
            cb.save_last = False
        if others and stage == "fit":
            rank_zero_info(f"depthlab: last.ckpt is written by LastCheckpoint; save_last of "
                           f"{len(others)} other ModelCheckpoint(s) switched off")

    def load_state_dict(self, state_dict: dict) -> None:
        # This state is the path of its own file; from another directory (validate/test runs, a copied
        # run) there is nothing to restore, and Lightning's "dirpath has changed" warning is noise.
        if state_dict.get("dirpath") == self.dirpath:
            super().load_state_dict(state_dict)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._first_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args, **kwargs) -> None:
        # The base class's step trigger excludes its epoch trigger; this one adds to it.
        n = self.every_n_train_steps
        if n and trainer.global_step % n == 0 and not self._should_skip_saving_checkpoint(trainer):
            self._save_last(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # max_steps part-way through an epoch ends with no epoch-end save.
        if not trainer.fast_dev_run and self._last_global_step_saved != trainer.global_step:
            self._save_last(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if trainer.state.fn != TrainerFn.FITTING or trainer.fast_dev_run or self._first_step is None:
            return  # not training yet (set-up, sanity check): no new state to keep
        stop = isinstance(exception, SIGTERMException)
        signum = preemption.received_signal() or signal.SIGTERM
        reason = f"stopped by {signal.Signals(signum).name}" if stop else f"{type(exception).__name__}"
        at = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
        if trainer.global_step == self._last_global_step_saved:
            outcome = f"{self.path} already holds this step"
        elif trainer.global_step == self._first_step:
            outcome = "no step since this run started: nothing new to save"
        elif isinstance(exception, KeyboardInterrupt):
            outcome = f"not saved (an interrupt may land inside an optimizer step); {self._held()}"
        elif trainer.world_size > 1 and not stop:
            outcome = f"not saved (an exception in one process cannot save under DDP); {self._held()}"
        elif not all(torch.isfinite(p).all() for p in pl_module.parameters()):
            outcome = f"not saved (the weights are not finite); {self._held()}"
        else:
            self._save_last(trainer)
            outcome = f"saved {self.path} (resume with --ckpt_path last)"
        rank_zero_info(f"depthlab: {reason} at {at}: {outcome}")

    def _held(self) -> str:
        if not self._last_global_step_saved:
            return "no last.ckpt from this run"
        return f"{self.path} holds step {self._last_global_step_saved}"

    def _save_last(self, trainer: L.Trainer) -> None:
        # best_model_path: with monitor=None Lightning's "best" of this callback is its latest file.
        self.best_model_path = self.last_model_path = self.path
        self._save_checkpoint(trainer, self.path)
