"""``DepthModule``: the one LightningModule of depthlab (network + loss + metrics + optimiser)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from depthlab import losses, models
from depthlab.data.batch import DepthSample
from depthlab.errors import ConfigError
from depthlab.eval import build_protocol
from depthlab.eval.distributed import RepeatTracker
from depthlab.eval.evaluator import Evaluator, report_stage
from depthlab.losses.base import safe_batch
from depthlab.metrics import valid_depth_mask
from depthlab.models.output import DepthOutput
from depthlab.visualize import depth_panel

Stage = Literal["val", "test"]


class DepthModule(L.LightningModule):
    """Monocular depth: ``net(image) -> DepthOutput`` trained with a (weighted) objective.

    Every loss sees the network's whole :class:`~depthlab.models.output.DepthOutput` and the whole
    batch (:meth:`compute_loss`), so supervised, stereo and uncertainty losses share one step; what
    each loss reads is checked against the data module and the network at start-up (:meth:`setup`).
    Validation and test are :class:`depthlab.eval.evaluator.Evaluator`'s job (one forward per view,
    per-image loss and metrics, exact under DDP); this module trains.

    Args:
        net: the network, by registry name (``unet``) or a mapping ``{name: unet, encoder: resnet34}``
            (or ``class_path``/``init_args``). ``min_depth``/``max_depth`` are passed to it.
        loss: the objective: a loss name, a mapping with its arguments, or a list of mappings each
            with a ``weight`` (their weighted sum; every term is logged).
        min_depth, max_depth: metres. The network's output range, and the ground-truth range that
            counts as valid (outside it, as for gt <= 0 or non-finite, pixels are masked out of the
            loss and the metrics).
        lr, weight_decay, betas: AdamW.
        optimizer: ``adamw`` (default) or ``sgd`` (with ``momentum``, as Eigen et al. 2014 trained).
            With SGD the update size scales with the gradient, so a loss's overall factor (e.g. the
            1/(2 sqrt(L)) of a square-root loss) acts as a learning-rate factor; AdamW mostly
            normalises it away.
        scheduler: ``cosine`` (linear warm-up then cosine decay to ``min_lr_ratio * lr``),
            ``onecycle`` (``torch.optim.lr_scheduler.OneCycleLR``) or ``none``; stepped per batch.
        warmup: warm-up length, a fraction of all training steps (< 1) or a number of steps.
        log_images: how many image | ground truth | prediction panels to log per validation.
        loss_min_depth: metres; ground truth at or below it is also left out of the loss (not of
            the metrics). BTS trains on gt > 0.1 m (NYU) and > 1.0 m (KITTI); ``null``: no extra
            threshold, the loss sees every valid pixel.
        lr_scaling: ``linear`` multiplies ``lr`` by effective batch / ``base_batch_size`` (Goyal et
            al. 2017's linear scaling rule, for moving a recipe to more devices); ``none`` (default)
            uses ``lr`` as given. The effective batch (per-device batch x devices x nodes x gradient
            accumulation) and the learning rate used are logged at the start of ``fit``.
        base_batch_size: the batch size ``lr`` was tuned for (``lr_scaling: linear`` needs it).
        max_nonfinite: the non-finite guard. An optimizer step whose loss or gradient holds NaN or
            inf (on any device) is skipped: no weight, no optimizer moment and no BatchNorm running
            statistic changes, and the LR schedule does not advance. Each skip is counted
            (``train/nonfinite_skipped``) and warned with the ``index`` of the batch's samples;
            this many skips in a row stop the run with :class:`NonFiniteTrainingError`. ``0``
            turns the guard off (every step is taken, as plain Lightning does). Under
            ``precision: 16-mixed`` only the loss is checked: the GradScaler already skips steps
            whose scaled gradients overflow, and those are not errors.
        eval_protocol: how validation and test metrics are computed: ``none`` (this model's depth
            range, no crop), ``nyu``, ``kitti``, or a mapping ``{name: kitti, crop: eigen,
            kb_crop: true, median_scaling: false, flip: monodepth, averaging: image, ...}``
            (see :class:`depthlab.eval.EvalProtocol`). Under DDP every evaluation image is counted
            exactly once: the samples Lightning's DistributedSampler repeats to pad the last
            batch get zero weight in the metrics and in ``val/loss``.
    """

    def __init__(
        self,
        net: str | dict[str, Any] = "unet",
        loss: str | dict[str, Any] | list[dict[str, Any]] = "silog",
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        optimizer: Literal["adamw", "sgd"] = "adamw",
        momentum: float = 0.9,
        scheduler: Literal["cosine", "onecycle", "none"] = "cosine",
        warmup: float = 0.05,
        min_lr_ratio: float = 0.01,
        log_images: int = 4,
        eval_protocol: str | dict[str, Any] = "none",
        loss_min_depth: float | None = None,
        max_nonfinite: int = 10,
        lr_scaling: Literal["none", "linear"] = "none",
        base_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= min_depth < max_depth:
            raise ConfigError(f"model: need 0 <= min_depth < max_depth, got {min_depth} and {max_depth}")
        if isinstance(max_nonfinite, bool) or not isinstance(max_nonfinite, int) or max_nonfinite < 0:
            raise ConfigError(
                f"model.max_nonfinite: expected an integer >= 0 (skipped steps in a row before the run stops; "
                f"0 turns the non-finite guard off), got {max_nonfinite!r}"
            )
        if optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"model.optimizer: expected adamw or sgd, got {optimizer!r}")
        if not 0 <= momentum < 1:
            raise ConfigError(f"model.momentum: expected a value in [0, 1) (sgd only), got {momentum}")
        if scheduler not in ("cosine", "onecycle", "none"):
            raise ConfigError(f"model.scheduler: expected cosine, onecycle or none, got {scheduler!r}")
        if lr_scaling not in ("none", "linear"):
            raise ConfigError(f"model.lr_scaling: expected none or linear, got {lr_scaling!r}")
        if lr_scaling == "linear" and not (isinstance(base_batch_size, int) and base_batch_size >= 1):
            raise ConfigError(f"model.base_batch_size: lr_scaling linear needs the batch size lr was tuned for, got {base_batch_size!r}")
        # Checked here, not by torch at the first optimizer step (a traceback after minutes of set-up).
        if not (math.isfinite(lr) and lr > 0):
            raise ConfigError(f"model.lr: expected a learning rate > 0, got {lr}")
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ConfigError(f"model.weight_decay: expected a value >= 0, got {weight_decay}")
        if not all(0 <= b < 1 for b in betas) or len(betas) != 2:
            raise ConfigError(f"model.betas: expected two values in [0, 1), got {tuple(betas)}")
        if not 0 <= warmup or not 0 < min_lr_ratio <= 1:
            raise ConfigError(f"model: need warmup >= 0 and 0 < min_lr_ratio <= 1, got {warmup} and {min_lr_ratio}")
        # eval_protocol belongs to the evaluation, not to the weights: kept out of the checkpoint's
        # hparams, so `depthlab test --ckpt_path X --model.eval_protocol kitti` is not overridden
        # by the value the checkpoint was trained with (LightningCLI re-applies checkpoint hparams).
        self.save_hyperparameters(ignore=["eval_protocol"])
        self.net = models.build(net, min_depth=max(min_depth, 1e-3), max_depth=max_depth)
        self.loss = losses.build_objective(loss)
        self.protocol = build_protocol(eval_protocol, min_depth=min_depth, max_depth=max_depth)
        self.evaluator = Evaluator(self.protocol, list(self.loss.terms))
        self._repeats = RepeatTracker()
        self._requirements_checked = False
        self._eval_loss = True
        self._guard = NonFiniteGuard(max_nonfinite)

    def forward(self, image: Tensor) -> DepthOutput:
        return self.net(image)

    def valid_mask(self, batch: DepthSample) -> Tensor:
        """Pixels whose ground truth is a finite measurement inside (min_depth, max_depth)."""
        return valid_depth_mask(batch["depth"], self.hparams.min_depth, self.hparams.max_depth, batch.get("valid"))

    # --- the objective ------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        """Check once, before the first batch, that the data and the network give every loss what it reads.

        ``fit`` stops with a :class:`ConfigError` naming the missing key. ``validate``/``test`` only
        need the loss for ``<stage>/loss``: on data without its inputs (e.g. a stereo-trained model
        tested on monocular frames) the metrics are computed and the loss is left out, with a warning.
        """
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        provides = getattr(datamodule, "provides", None)
        head = getattr(self.net, "head", None)
        outputs = head.provides if isinstance(getattr(head, "provides", None), frozenset) else None
        self.loss.check_requirements(None, outputs, f"network {type(self.net).__name__}")
        self._requirements_checked = provides is not None
        self._eval_loss = True
        if provides is None:
            return
        try:
            self.loss.check_requirements(provides, None, f"data module {type(datamodule).__name__}")
        except ConfigError as exc:
            if stage == "fit":
                raise
            self._eval_loss = False
            rank_zero_warn(f"{stage}: the loss is not evaluated ({exc}); the metrics are")

    def loss_mask(self, batch: DepthSample) -> Tensor:
        """Pixels whose ground truth counts for the loss: :meth:`valid_mask`, above ``loss_min_depth`` when set."""
        mask = self.valid_mask(batch)
        if self.hparams.loss_min_depth is not None:
            mask = mask & (batch["depth"] > self.hparams.loss_min_depth)
        return mask

    def compute_loss(self, out: DepthOutput, batch: DepthSample) -> tuple[Tensor, dict[str, Tensor]]:
        """The objective on one batch: ``(total, {term: unweighted value})``.

        Losses get :meth:`loss_mask` (all False for a batch without ``depth``: self-supervised
        terms do not use it). Every depth-like map is made safe once before any loss sees it
        (:func:`~depthlab.losses.base.safe_batch`: 1 m at masked ground truth and missing hints).
        """
        if not self._requirements_checked:  # a data module that declares nothing: check the first batch
            self.loss.check_requirements(batch.keys(), None, "the batch")
            self.loss.check_requirements(None, out.available(), f"network {type(self.net).__name__}")
            self._requirements_checked = True
        mask = self.loss_mask(batch) if "depth" in batch else torch.zeros_like(out.depth, dtype=torch.bool)
        return self.loss(out, safe_batch(batch, {"depth": mask}), mask)

    # --- steps --------------------------------------------------------------------------------

    def training_step(self, batch: DepthSample, batch_idx: int) -> Tensor:
        total, parts = self.compute_loss(self(batch["image"]), batch)
        bs = batch["image"].shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        for name, value in parts.items():
            if "/" in name:  # a term's diagnostic, e.g. depth_hints/hint_fraction
                self.log(f"train/{name}", value, batch_size=bs)
            elif len(self.loss.terms) > 1:
                self.log(f"train/loss_{name}", value, batch_size=bs)
        return total

    # --- the non-finite guard: a NaN/inf loss or gradient skips the step (NonFiniteGuard) ------

    def on_fit_start(self) -> None:
        self._guard.reset(self)  # after the strategy moved the module: the buffers are final

    def effective_lr(self) -> tuple[float, str]:
        """The learning rate this run uses and a one-line account of it (batch sizes, scaling)."""
        trainer, hp = self.trainer, self.hparams
        per_device = getattr(trainer.datamodule, "batch_size", None) if trainer.datamodule is not None else None
        accumulate = trainer.accumulate_grad_batches
        devices = trainer.world_size  # devices x nodes
        if per_device is None:
            batch_line = f"{devices} devices x {accumulate} accumulation (per-device batch unknown)"
            effective = None
        else:
            effective = per_device * devices * accumulate
            batch_line = f"effective batch {effective} = {per_device} per device x {devices} devices x {accumulate} accumulation"
        lr = hp.lr
        if hp.lr_scaling == "linear":
            if effective is None:
                raise ConfigError("model.lr_scaling: linear needs the data module's batch_size to compute the effective batch")
            lr = hp.lr * effective / hp.base_batch_size
            return lr, f"{batch_line}; lr {lr:g} (linear scaling: {hp.lr:g} x {effective} / {hp.base_batch_size})"
        return lr, f"{batch_line}; lr {lr:g}"

    def on_train_batch_start(self, batch: DepthSample, batch_idx: int) -> None:
        if self._guard.enabled:
            self._guard.before_batch(self, batch, batch_idx)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Lightning's step, unless the loss or a gradient is not finite on some device (then skipped).

        The closure (training_step, zero_grad, backward) is run here first, so the decision is
        taken before the optimizer sees the gradients: AdamW's weight decay and moment updates
        would move every weight even with the gradients zeroed, so the step itself is left out.
        The optimizer then gets the closure's result instead of the closure (AdamW calls it once).
        """
        guard = self._guard
        if not guard.enabled or optimizer_closure is None:
            optimizer.step(closure=optimizer_closure)
            return
        loss = optimizer_closure()
        # Under a GradScaler (16-mixed) the gradients are still scaled here, and the scaler skips
        # the steps whose gradients overflow by itself: only a non-finite loss is our error then.
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        grads = [] if scaler is not None else [p.grad for p in self.parameters() if p.grad is not None]
        local = bool(nonfinite(loss, grads))
        # Every device takes the same decision (DDP replicas stay identical): skip when any is bad.
        skip = self.trainer.strategy.reduce_boolean_decision(local, all=False)
        if skip:
            guard.skip(self, loss, local)
            self.log("train/nonfinite_skipped", float(guard.total), batch_size=1)
        else:
            guard.taken()
            optimizer.step(closure=lambda: loss)

    def on_train_epoch_end(self) -> None:
        # The count once per epoch (and at each skip above), not every step: a self.log per step
        # would cost about as much as the rest of the guard.
        if self._guard.enabled:
            self.log("train/nonfinite_skipped", float(self._guard.total), on_epoch=True, sync_dist=True)

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        # The schedule follows the optimizer steps taken: a skipped step does not advance it
        # (OneCycleLR would also fail past its total_steps otherwise).
        if self._guard.last_skipped:
            return
        super().lr_scheduler_step(scheduler, metric)

    # --- evaluation steps ---------------------------------------------------------------------

    def validation_step(self, batch: DepthSample, batch_idx: int, dataloader_idx: int = 0) -> None:
        pred, seen = self._evaluate(batch, "val", dataloader_idx)
        if batch_idx == 0 and dataloader_idx == 0:
            self._log_panels(seen, pred.out)

    def test_step(self, batch: DepthSample, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, "test", dataloader_idx)

    def predict_step(self, batch: DepthSample, batch_idx: int) -> DepthOutput:
        return self(batch["image"])

    # --- evaluation: depthlab.eval.Evaluator does the work ------------------------------------

    def _evaluate(self, batch: DepthSample, stage: Stage, dataloader_idx: int):
        loaders = self.trainer.val_dataloaders if stage == "val" else self.trainer.test_dataloaders
        loader = loaders[dataloader_idx] if isinstance(loaders, (list, tuple)) else loaders
        real = self._repeats.real(loader, dataloader_idx, batch["image"].shape[0], self.trainer.world_size, self.device)
        return self.evaluator.step(stage, batch, self.net, self.compute_loss if self._eval_loss else None, real)

    def on_validation_epoch_start(self) -> None:
        self._repeats.reset()

    def on_test_epoch_start(self) -> None:
        self._repeats.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def _log_metrics(self, stage: Stage) -> None:
        values = self.evaluator.compute(stage)
        for name, value in values.items():
            # Already summed over devices by compute(); sync_dist averages equal numbers (a no-op)
            # and keeps Lightning from warning about unsynced epoch-level values.
            self.log(f"{stage}/{name}", value.float(), prog_bar=name in ("abs_rel", "delta1"), sync_dist=True)
        if self.trainer.state.fn in (TrainerFn.VALIDATING, TrainerFn.TESTING) and not self.trainer.sanity_checking:
            log_dir = self.trainer.log_dir or self.trainer.default_root_dir  # log_dir: call on every rank
            if self.trainer.is_global_zero:
                report_stage(values, stage, self.protocol, log_dir, self.trainer.ckpt_path, self.trainer.world_size)

    def _log_panels(self, batch: DepthSample, out: DepthOutput) -> None:
        experiment = getattr(self.logger, "experiment", None)
        n = min(self.hparams.log_images, out.depth.shape[0])
        if n == 0 or not hasattr(experiment, "add_image") or self.trainer.sanity_checking:
            return
        mask = self.valid_mask(batch)
        log_var = out.log_variance
        rows = [
            depth_panel(batch["image"][i], batch["depth"][i], mask[i], out.depth[i], None if log_var is None else log_var[i])
            for i in range(n)
        ]
        name = "val/image_gt_pred" + ("_sigma" if log_var is not None else "")
        experiment.add_image(name, torch.cat(rows, dim=1), self.global_step)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        lr, account = self.effective_lr()
        rank_zero_info(f"depthlab: {account}")
        if hp.get("optimizer", "adamw") == "sgd":  # Eigen et al. 2014; the update size follows the gradient's scale
            optimizer = torch.optim.SGD(self.parameters(), lr=lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        else:  # BTS, GLPDepth, AdaBins: Adam's update size is nearly independent of the gradient's scale
            optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=hp.weight_decay, betas=tuple(hp.betas))
        if hp.scheduler == "none":
            return optimizer
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = int(hp.warmup * total) if hp.warmup < 1 else int(hp.warmup)
        if hp.scheduler == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=lr, total_steps=total, pct_start=max(warmup, 1) / total
            )
        else:
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, warmup, hp.min_lr_ratio))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


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

    def before_batch(self, module: L.LightningModule, batch: DepthSample, batch_idx: int) -> None:
        if not self._samples and self._buffers:  # the first micro-batch of this optimizer step
            torch._foreach_copy_(self._copies, self._buffers)
        # References only (the batch holds them anyway); which samples are not finite is worked
        # out when a step is skipped, so a taken step pays nothing for the report.
        images = [batch[k] for k in _IMAGE_KEYS if isinstance(batch.get(k), Tensor)]
        self._samples.append((batch.get("index"), images, batch_idx))

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
                stacklevel=3,
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


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float):
    """LR factor: linear from 1/warmup to 1 over ``warmup_steps``, then cosine to ``min_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
