"""The non-finite guard: an optimizer step whose loss or gradient holds NaN or inf is skipped.

:class:`NonFiniteGuard` holds the state (counts, the buffers to restore, the samples to name);
:meth:`NonFiniteGuard.step` is what :meth:`depthlab.module.DepthModule.optimizer_step` calls. See
``model.max_nonfinite`` in :class:`depthlab.module.DepthModule` and docs/training.md.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor

from depthlab.errors import ConfigError


class NonFiniteTrainingError(ConfigError):
    """Training stopped after ``model.max_nonfinite`` skipped steps in a row.

    A :class:`ConfigError` so that the CLI prints it as one line: what to change is configuration
    (learning rate, clipping, precision) or data.
    """


class NonFiniteStepWarning(UserWarning):
    """An optimizer step was skipped because its loss or a gradient was NaN or inf."""


def nonfinite(loss: Tensor | None, grads: Sequence[Tensor] = ()) -> Tensor:
    """0-dim bool tensor: the loss or any gradient holds NaN or +-inf.

    One 2-norm over all gradients (foreach kernels, no per-tensor check): NaN and inf propagate
    into it. A gradient whose 2-norm overflows float32 (entries above ~1e19) counts as non-finite
    too; AdamW would square it into an infinite second moment anyway.
    """
    bad = torch.tensor(False) if loss is None else ~torch.isfinite(loss.detach()).all()
    if grads:
        get_total_norm = getattr(torch.nn.utils, "get_total_norm", None)  # torch >= 2.6
        if get_total_norm is not None:
            norm = get_total_norm(grads, 2.0)
        else:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        bad = bad.to(norm.device) | ~torch.isfinite(norm)
    return bad


_IMAGE_KEYS = ("image", "image_right")  # network inputs: ground-truth maps may hold NaN (they are masked)


class NonFiniteGuard:
    """State of :class:`DepthModule`'s non-finite guard: counts, and what to restore and report.

    Per optimizer step it keeps the samples' ``index`` and input images (of every micro-batch
    under gradient accumulation), to name the samples whose image is not finite, and a copy of the
    module's buffers from before the step's first forward: BatchNorm updates its running statistics
    in the forward, before the step can be judged, so a skipped step puts them back.
    """

    def __init__(self, max_nonfinite: int) -> None:
        self.max_nonfinite = max_nonfinite
        self.reset()

    @property
    def enabled(self) -> bool:
        return self.max_nonfinite > 0

    def reset(self, module: torch.nn.Module | None = None) -> None:
        """Zero the counts; with ``module``, take its buffers (once placed on their device) to guard."""
        self.total = 0
        self.in_a_row = 0
        self.last_skipped = False
        self._samples: list[tuple[Tensor | None, list[Tensor], int]] = []
        self._buffers = [] if module is None else list(module.buffers())
        self._copies = [b.detach().clone() for b in self._buffers]

    def before_batch(self, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if not self._samples and self._buffers:  # the first micro-batch of this optimizer step
            torch._foreach_copy_(self._copies, self._buffers)
        # References only (the batch holds them anyway); which samples are not finite is worked
        # out when a step is skipped, so a taken step pays nothing for the report.
        images = [batch[k] for k in _IMAGE_KEYS if isinstance(batch.get(k), Tensor)]
        self._samples.append((batch.get("index"), images, batch_idx))

    def step(
        self,
        module: L.LightningModule,
        optimizer: Any,
        closure: Callable[[], Any] | None,
        before_step: Callable[[], None] | None = None,
    ) -> None:
        """Lightning's optimizer step, unless the loss or a gradient is not finite on some device (then skipped).

        The closure (training_step, zero_grad, backward) is run here first, so the decision is
        taken before the optimizer sees the gradients: AdamW's weight decay and moment updates
        would move every weight even with the gradients zeroed, so the step itself is left out.
        The optimizer then gets the closure's result instead of the closure (AdamW calls it once).
        ``before_step`` runs between the backward and a step that is taken (e.g. dropping a frozen
        encoder's gradients); with neither it nor the guard, this is Lightning's plain step.
        """
        if closure is None or (not self.enabled and before_step is None):
            optimizer.step(closure=closure)
            return
        loss = closure()
        if self.enabled:
            trainer = module.trainer
            # Under a GradScaler (16-mixed) the gradients are still scaled here, and the scaler skips
            # the steps whose gradients overflow by itself: only a non-finite loss is our error then.
            scaler = getattr(trainer.precision_plugin, "scaler", None)
            grads = [] if scaler is not None else [p.grad for p in module.parameters() if p.grad is not None]
            local = bool(nonfinite(loss, grads))
            # Every device takes the same decision (DDP replicas stay identical): skip when any is bad.
            if trainer.strategy.reduce_boolean_decision(local, all=False):
                self.skip(module, loss, local)
                module.log("train/nonfinite_skipped", float(self.total), batch_size=1)
                return
            self.taken()
        if before_step is not None:
            before_step()
        optimizer.step(closure=lambda: loss)

    def taken(self) -> None:
        self.in_a_row = 0
        self.last_skipped = False
        self._samples = []

    def skip(self, module: L.LightningModule, loss: Tensor | None, local: bool) -> None:
        """Count a skipped step, undo the forward's buffer updates, warn, and stop after too many in a row."""
        self.total += 1
        self.in_a_row += 1
        self.last_skipped = True
        if self._buffers:
            torch._foreach_copy_(self._buffers, self._copies)
        trainer = module.trainer
        if local:
            value = None if loss is None else float(loss)
            cause = "non-finite gradient" if value is None or math.isfinite(value) else f"non-finite loss ({value})"
            where = self.describe_samples()
        else:  # the rank that found it names its samples in its own warning
            cause, where = "non-finite loss or gradient on another device", "see that rank's warning for the samples"
        self._samples = []
        rank = f"rank {trainer.global_rank}: " if trainer.world_size > 1 else ""
        if local or trainer.is_global_zero:
            warnings.warn(
                f"{rank}step {module.global_step} skipped: {cause}; {where}; {self.in_a_row} in a row, "
                f"{self.total} in total (the run stops after model.max_nonfinite={self.max_nonfinite} in a row)",
                NonFiniteStepWarning,
                stacklevel=4,  # the caller of DepthModule.optimizer_step
            )
        if self.in_a_row >= self.max_nonfinite:
            raise NonFiniteTrainingError(
                f"training stopped: {self.in_a_row} optimizer steps in a row had a non-finite loss or gradient "
                f"(model.max_nonfinite={self.max_nonfinite}; last: {where}); try a lower model.lr, check those samples "
                "with 'depthlab data check --config <your config>', clip gradients (trainer.gradient_clip_val: 1.0), "
                "or trainer.precision: bf16-mixed instead of 16-mixed"
            )

    def describe_samples(self) -> str:
        """``samples [3, 17, 42, 8] (non-finite input image: [17])``, or the batch numbers without ``index``."""
        indices, bad, batches = [], [], []
        for index, images, batch_idx in self._samples:
            batches.append(batch_idx)
            if index is None:
                continue
            ids = index.reshape(-1).tolist()
            indices += ids
            if images:
                finite = torch.stack([torch.isfinite(x.flatten(1)).all(1) for x in images]).all(0)
                bad += [i for i, ok in zip(ids, finite.tolist()) if not ok]
        if not indices:
            return f"batch {', '.join(map(str, batches))} of the epoch (the batches carry no sample index)"
        text = f"samples {indices}"
        return text + (f" (non-finite input image: {bad})" if bad else "")
