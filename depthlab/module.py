"""``DepthModule``: the one LightningModule of depthlab (network + loss; it trains).

Evaluation is :class:`depthlab.eval.evaluator.Evaluator`'s, the non-finite guard
:mod:`depthlab.training.guard`'s, the optimiser, schedule and parameter groups
:mod:`depthlab.training.optim`'s; this module's hooks are thin calls into them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn
from torchmetrics import MeanMetric

from depthlab import losses, models
from depthlab import pose as pose_models
from depthlab.data.batch import DepthSample
from depthlab.data.keys import frame_suffix
from depthlab.errors import ConfigError
from depthlab.eval import build_protocol
from depthlab.eval.distributed import RepeatTracker
from depthlab.eval.evaluator import Evaluator, report_stage
from depthlab.eval.protocols import align_scale_shift
from depthlab.eval.report import COUNTS
from depthlab.geometry import translation_angle_deg
from depthlab.losses.base import safe_batch
from depthlab.metrics import valid_depth_mask
from depthlab.models.output import RELATIVE, DepthOutput
from depthlab.training import optim
from depthlab.training.guard import NonFiniteGuard
from depthlab.training.protocol import protocol_in_force, protocol_spec
from depthlab.training.supervision import EmptySupervisionError, SupervisionCheck
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
        lr, weight_decay, betas: AdamW (``lr`` for every optimizer, unless its class path states one).
        optimizer: ``adamw`` (default) or ``sgd`` (with ``momentum``, as Eigen et al. 2014 trained).
            With SGD the update size scales with the gradient, so a loss's overall factor (e.g. the
            1/(2 sqrt(L)) of a square-root loss) acts as a learning-rate factor; AdamW mostly
            normalises it away. Or any optimizer by class path (``--model.optimizer torch.optim.SGD
            --model.optimizer.lr 0.01``): its own arguments apply (not ``weight_decay``/``betas``/
            ``momentum`` above); its ``lr``, when stated, wins over ``lr``.
        scheduler: ``cosine`` (linear warm-up then cosine decay to ``min_lr_ratio * lr``),
            ``onecycle`` (``torch.optim.lr_scheduler.OneCycleLR``) or ``none``; stepped per batch.
        lr_scheduler: any scheduler by class path (``--model.lr_scheduler
            torch.optim.lr_scheduler.StepLR --model.lr_scheduler.step_size 1000``); it replaces
            ``scheduler`` (``warmup``/``min_lr_ratio`` do not apply). Stepped per optimizer step, or
            per epoch with ``lr_scheduler_interval: epoch`` (ReduceLROnPlateau: per epoch on
            ``val/loss``). A ``total_steps`` left unset (OneCycleLR) is the run's length.
        warmup: warm-up length, a fraction of all training steps (< 1) or a number of steps.
        encoder_lr_mult: the pretrained encoder's learning rate as a multiple of the rest's (e.g.
            0.1 to fine-tune); the encoder is the network's ``depthlab.models.encoders.Encoder``
            (``net.encoder.*`` of unet and glpn, ``net.coarse.layers.backbone.*`` of eigen2014).
        freeze_encoder_steps: the encoder's weights do not change for the first N optimizer steps
            (its gradients are dropped before each step: no update, no weight decay, no optimizer
            state; its BatchNorm statistics still follow the data), then it trains.
        param_groups: more parameter groups by name: ``[{pattern: regex, lr_mult: x, weight_decay:
            y, freeze_steps: n, name: label}]`` (``re.search`` on names such as
            ``net.decoder.0.conv.weight``; the first matching rule wins, the encoder's after these).
            The groups are logged at the start of ``fit``.
        pose_net: monocular video training (Monodepth2's M and MS): a pose network of the
            ``depthlab.pose_models`` group (``monodepth2``, or a mapping with its arguments) that
            predicts the camera motion from the target frame to each temporal source frame the
            objective warps (``frame_ids`` of ``photometric``/``depth_hints``); its poses reach the
            losses as ``DepthOutput.poses``. Saved in the same checkpoint; never exported or used
            by ``predict`` (depth only).
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
            (see :class:`depthlab.eval.EvalProtocol`). The default: a data module with an
            ``eval_protocol`` of its own uses that for its splits (:mod:`depthlab.training.protocol`).
            Saved in checkpoints (the one validation used), so ``test --ckpt_path`` evaluates as
            validation did unless another is stated. Under DDP every evaluation image is counted
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
        optimizer: Literal["adamw", "sgd"] | OptimizerCallable = "adamw",
        momentum: float = 0.9,
        scheduler: Literal["cosine", "onecycle", "none"] = "cosine",
        warmup: float = 0.05,
        min_lr_ratio: float = 0.01,
        lr_scheduler: LRSchedulerCallable | None = None,
        lr_scheduler_interval: Literal["step", "epoch"] = "step",
        encoder_lr_mult: float = 1.0,
        freeze_encoder_steps: int = 0,
        param_groups: list[dict[str, Any]] | None = None,
        log_images: int = 4,
        eval_protocol: str | dict[str, Any] = "none",
        pose_net: str | dict[str, Any] | None = None,
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
        optim.check_settings(optimizer=optimizer, lr=lr, weight_decay=weight_decay, betas=betas, momentum=momentum,
                             scheduler=scheduler, warmup=warmup, min_lr_ratio=min_lr_ratio, lr_scheduler=lr_scheduler,
                             lr_scheduler_interval=lr_scheduler_interval, lr_scaling=lr_scaling,
                             base_batch_size=base_batch_size)
        # eval_protocol is a hyper-parameter like the others: with --ckpt_path, depthlab's settings
        # precedence rule (stated settings win, unstated ones come from the checkpoint) decides it, so
        # `test --ckpt_path X` evaluates as validation did and `--model.eval_protocol kitti` still wins.
        self.save_hyperparameters()
        self.net = models.build(net, min_depth=max(min_depth, 1e-3), max_depth=max_depth)
        self.loss = losses.build_objective(loss)
        # monocular video: the camera motion to each temporal source frame the objective warps
        self.pose_net = None if pose_net is None else pose_models.build(pose_net)
        self._frames = sorted({k for term in self.loss.terms.values() for k in getattr(term, "temporal", ())})
        # validation of the pose network where the data know the camera motion (procedural videos):
        # the angle between predicted and true translation (scale-free, so it suits monocular training)
        self.pose_direction = MeanMetric() if self.pose_net is not None else None
        self.protocol = build_protocol(eval_protocol, min_depth=min_depth, max_depth=max_depth)
        self.evaluator = Evaluator(self.protocol, list(self.loss.terms))
        # the evaluator of each stage: the model's, or one for a data module's own protocol (setup)
        self.stage_evaluators = nn.ModuleDict({"val": self.evaluator, "test": self.evaluator})
        # a data module of several members (depthlab.data.MixtureDataModule): one evaluator per
        # member's loader, each under the member's protocol (setup); metrics per member and their mean
        self.member_evaluators = nn.ModuleDict()
        self._members: dict[str, list[str]] = {}
        self._repeats = RepeatTracker()
        self._requirements_checked = False
        self._eval_loss = True
        self._guard = NonFiniteGuard(max_nonfinite)
        self._supervision = SupervisionCheck()  # ground truth that never counts is an error (a wrong unit)
        # checked now (a bad pattern, or no encoder to match, is one line before any data is read)
        optim.group_rules(self, param_groups, encoder_lr_mult, freeze_encoder_steps)
        self._groups: list[optim.ParamGroup] = []
        self._step_interval = True

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
        ``predict`` evaluates no loss: nothing is checked. Each evaluation stage gets the protocol in
        force (:func:`depthlab.training.protocol.protocol_in_force`). The data module is then told
        which keys the stage's batches must carry (:meth:`required_keys`; it loads nothing else).
        """
        stage = str(getattr(stage, "value", stage))  # Lightning passes a TrainerFn
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "predict":  # the predict loader is the test split's: everything, for the writers
            require = getattr(datamodule, "require", None)
            if callable(require):
                require(None, "test")
            return
        self._set_protocols(datamodule, ("val",) if stage in ("fit", "validate") else ("test",))
        provides = getattr(datamodule, "provides", None)
        outputs = models.provides(self.net)
        if outputs is not None and self.pose_net is not None:
            outputs = outputs | {"poses"}
        self.loss.check_requirements(None, outputs, f"network {type(self.net).__name__}")
        if outputs is not None and RELATIVE in outputs:  # evaluation must align a relative prediction
            for evaluator in self._evaluators("val" if stage in ("fit", "validate") else "test"):
                evaluator.protocol.check_kind(RELATIVE, f"network {type(self.net).__name__}'s output")
        elif stage == "fit" and self.loss.scale_invariant:  # a metric network that nothing teaches metres
            if any(evaluator.protocol.align == "none" for evaluator in self._evaluators("val")):
                terms = ", ".join(self.loss.terms)
                raise ConfigError(
                    f"model.loss: every term ({terms}) is blind to depth's scale, so nothing teaches network "
                    f"{type(self.net).__name__} metres, yet validation scores metres without alignment; add a metric "
                    "term (e.g. silog), set model.eval_protocol.align: scale_shift (or median), or train a relative "
                    "network (model.net: {name: hf, kind: relative})")
        self._requirements_checked = provides is not None
        self._eval_loss = True
        if provides is not None:
            try:
                self.loss.check_requirements(provides, None, f"data module {type(datamodule).__name__}")
            except ConfigError as exc:
                if stage == "fit":
                    raise
                self._eval_loss = False
                rank_zero_warn(f"{stage}: the loss is not evaluated ({exc}); the metrics are computed")
        self._require_keys(datamodule, stage)

    def required_keys(self, split: str) -> frozenset[str]:
        """The batch keys this module reads from ``split``'s batches: the network's input, the
        objective's ``requires`` (training, and the ``<stage>/loss`` of evaluation), the evaluation's
        (:attr:`Evaluator.requires`) and the pose network's temporal frames."""
        keys = {"image"} | {"image" + frame_suffix(k) for k in self._frames if self.pose_net is not None}
        if split == "train" or self._eval_loss:
            keys |= self.loss.requires
        if split != "train":
            keys |= Evaluator.requires
        return frozenset(keys)

    def _require_keys(self, datamodule: Any, stage: str) -> None:
        """Tell the data module what the batches of this stage's splits must carry
        (:meth:`depthlab.data.loading.SplitDataModule.require`), so that it loads nothing else: called
        from ``setup``, which Lightning runs after the data module's own ``setup`` and before it asks
        for any loader, for every way of starting a run (the CLI, ``Trainer.fit`` in a script, the
        experiment runner). A data module without ``require`` loads everything."""
        require = getattr(datamodule, "require", None)
        if not callable(require):
            return
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(stage, ())
        for split in splits:
            require(self.required_keys(split), split)

    def _evaluators(self, stage: Stage) -> list[Evaluator]:
        """The evaluators of ``stage``: one per member of a mixture, else the stage's one."""
        return list(self.member_evaluators[stage]) if stage in self._members else [self.stage_evaluators[stage]]

    def _set_protocols(self, datamodule: Any, stages: tuple[Stage, ...]) -> None:
        hp = self.hparams
        names = list(getattr(datamodule, "member_names", None) or [])
        for stage in stages:
            if names:  # one evaluator per member: each member's protocol, else the model's
                specs = datamodule.eval_protocols()
                protocols = [self.protocol if specs.get(n) is None else
                             build_protocol(specs[n], min_depth=hp.min_depth, max_depth=hp.max_depth) for n in names]
                self.member_evaluators[stage] = nn.ModuleList(Evaluator(p, list(self.loss.terms)) for p in protocols)
                self.stage_evaluators[stage] = self.member_evaluators[stage][0]
                self._members[stage] = names
                rank_zero_info(f"depthlab: {stage} per member: " + "; ".join(
                    f"{n}: {p.describe()}" for n, p in zip(names, protocols)))
                continue
            self._members.pop(stage, None)
            protocol, source = protocol_in_force(self.protocol, datamodule, stage, hp.min_depth, hp.max_depth)
            current = self.stage_evaluators[stage]
            if protocol != current.protocol:
                self.stage_evaluators[stage] = (
                    self.evaluator if protocol == self.protocol else Evaluator(protocol, list(self.loss.terms))
                )
            if source != "model.eval_protocol":
                rank_zero_info(f"depthlab: {stage} protocol from the {source}: {protocol.describe()}")

    def loss_mask(self, batch: DepthSample) -> Tensor:
        """Pixels whose ground truth counts for the loss: :meth:`valid_mask`, above ``loss_min_depth`` when set."""
        mask = self.valid_mask(batch)
        if self.hparams.loss_min_depth is not None:
            mask = mask & (batch["depth"] > self.hparams.loss_min_depth)
        return mask

    def compute_loss(self, out: DepthOutput, batch: DepthSample, mask: Tensor | None = None
                     ) -> tuple[Tensor, dict[str, Tensor]]:
        """The objective on one batch: ``(total, {term: unweighted value})``.

        Losses get :meth:`loss_mask` (``mask`` when the caller computed it already; all False for a
        batch without ``depth``: self-supervised terms do not use it). Every depth-like map is made
        safe once before any loss sees it (:func:`~depthlab.losses.base.safe_batch`: 1 m at masked
        ground truth and missing hints).
        """
        out = self.with_poses(out, batch)
        if not self._requirements_checked:  # a data module that declares nothing: check the first batch
            self.loss.check_requirements(batch.keys(), None, "the batch")
            self.loss.check_requirements(None, out.available(), f"network {type(self.net).__name__}")
            self._requirements_checked = True
        if mask is None:
            mask = self.loss_mask(batch) if "depth" in batch else torch.zeros_like(out.prediction, dtype=torch.bool)
        return self.loss(out, safe_batch(batch, {"depth": mask}), mask)

    def predict_poses(self, batch: DepthSample) -> dict[int, Tensor]:
        """The pose network's motion (B, 4, 4), target camera -> frame k's, for each temporal frame k
        the objective warps (Monodepth2: the pair in temporal order, inverted for frames before the target)."""
        target, poses = batch["image"], {}
        for k in self._frames:
            source = batch["image" + frame_suffix(k)]
            poses[k] = self.pose_net.pose(source, target, invert=True) if k < 0 else self.pose_net.pose(target, source)
        return poses

    def with_poses(self, out: DepthOutput, batch: DepthSample) -> DepthOutput:
        """``out`` with :meth:`predict_poses` (unchanged without a pose network or when it has poses)."""
        if self.pose_net is None or not self._frames or out.poses is not None:
            return out
        return replace(out, poses=self.predict_poses(batch))

    # --- steps --------------------------------------------------------------------------------

    def _check_supervision(self, stage: str, batch: DepthSample, mask: Tensor) -> None:
        hp = self.hparams
        above = f", above loss_min_depth {hp.loss_min_depth}" if stage == "train" and hp.loss_min_depth else ""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        self._supervision.check(stage, batch["depth"], mask, datamodule, f"({hp.min_depth}, {hp.max_depth}] m{above}")

    def training_step(self, batch: DepthSample, batch_idx: int) -> Tensor:
        mask = None
        if "depth" in self.loss.requires:  # a supervised objective: its ground truth must count
            mask = self.loss_mask(batch)
            self._check_supervision("train", batch, mask)
        total, parts = self.compute_loss(self(batch["image"]), batch, mask)
        bs = batch["image"].shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=bs)
        for name, value in parts.items():
            if "/" in name:  # a term's diagnostic, e.g. depth_hints/hint_fraction
                self.log(f"train/{name}", value, batch_size=bs)
            elif len(self.loss.terms) > 1:
                self.log(f"train/loss_{name}", value, batch_size=bs)
        return total

    # --- optimisation: depthlab.training (the guard, the optimiser, schedule and parameter groups) -

    def configure_optimizers(self) -> Any:
        setup = optim.configure(self)
        optim.log_setup(setup)  # rank zero: lr, optimizer, schedule, parameter groups
        self._groups = [g for g in setup.groups if g.freeze_steps]
        self._step_interval = setup.step_interval
        return setup.config

    def on_fit_start(self) -> None:
        self._guard.reset(self)  # after the strategy moved the module: the buffers are final

    def on_train_batch_start(self, batch: DepthSample, batch_idx: int) -> None:
        if self._guard.enabled:
            self._guard.before_batch(self, batch, batch_idx)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Lightning's step through the non-finite guard (:meth:`NonFiniteGuard.step`); frozen groups'
        gradients are dropped before a step taken while they are frozen."""
        step = self.global_step
        frozen = [g for g in self._groups if step < g.freeze_steps]
        before = (lambda: optim.drop_frozen_grads(frozen, step)) if frozen else None
        self._guard.step(self, optimizer, optimizer_closure, before)

    def on_train_epoch_end(self) -> None:
        # The count once per epoch (and at each skip), not every step: a self.log per step
        # would cost about as much as the rest of the guard.
        if self._guard.enabled:
            self.log("train/nonfinite_skipped", float(self._guard.total), on_epoch=True, sync_dist=True)
        if "depth" in self.loss.requires:
            self.log("train/empty_images", float(self._supervision.reset_epoch("train")), on_epoch=True, sync_dist=True,
                     reduce_fx="sum")

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        # The schedule follows the optimizer steps taken: a skipped step does not advance it
        # (OneCycleLR would also fail past its total_steps otherwise).
        if self._guard.last_skipped and self._step_interval:
            return
        super().lr_scheduler_step(scheduler, metric)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The protocol validation used is the checkpoint's eval_protocol (a data module's own, if it had one).
        protocol = self.stage_evaluators["val"].protocol
        hparams = checkpoint.get("hyper_parameters")
        if protocol is not self.protocol and isinstance(hparams, dict):
            hparams["eval_protocol"] = protocol_spec(protocol)

    # --- evaluation steps ---------------------------------------------------------------------

    def validation_step(self, batch: DepthSample, batch_idx: int, dataloader_idx: int = 0) -> None:
        if "depth" in batch:  # the metrics need ground truth that counts (NaN metrics otherwise)
            self._check_supervision("val", batch, self.valid_mask(batch))
        if self.pose_direction is not None:
            self._update_pose_metric(batch)
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
        evaluator = self.member_evaluators[stage][dataloader_idx] if stage in self._members else self.stage_evaluators[stage]
        return evaluator.step(stage, batch, self.net, self.compute_loss if self._eval_loss else None, real)

    def on_validation_epoch_start(self) -> None:
        self._repeats.reset()

    def on_test_epoch_start(self) -> None:
        self._repeats.reset()

    def _update_pose_metric(self, batch: DepthSample) -> None:
        known = [k for k in self._frames if "pose" + frame_suffix(k) in batch]
        if not known:
            return
        poses = self.predict_poses(batch)
        for k in known:
            self.pose_direction.update(translation_angle_deg(poses[k], batch["pose" + frame_suffix(k)]))

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def _log_metrics(self, stage: Stage) -> None:
        names = self._members.get(stage)
        if names:
            members = [ev.compute(stage) for ev in self.member_evaluators[stage]]
            for name, values in zip(names, members):
                for key, value in values.items():
                    self.log(f"{stage}/{name}/{key}", value.float(), sync_dist=True)
            # the usual names hold the mean over members (NaN if a member has no number: no hiding it)
            shared = [key for key in members[0] if all(key in m for m in members)]
            values = {key: torch.stack([m[key].float() for m in members]).sum(0) if key in COUNTS else
                      torch.stack([m[key].float() for m in members]).mean() for key in shared}
        else:
            members, values = [], self.stage_evaluators[stage].compute(stage)
        if stage == "val" and self.pose_direction is not None and self.pose_direction.update_count:
            # the mean angle (degrees) between predicted and true camera translation to each source frame
            values["pose_direction_deg"] = self.pose_direction.compute()  # synced by torchmetrics
            self.pose_direction.reset()
        for name, value in values.items():
            # Already summed over devices by compute(); sync_dist averages equal numbers (a no-op)
            # and keeps Lightning from warning about unsynced epoch-level values.
            self.log(f"{stage}/{name}", value.float(), prog_bar=name in ("abs_rel", "delta1"), sync_dist=True)
        if self.trainer.state.fn in (TrainerFn.VALIDATING, TrainerFn.TESTING) and not self.trainer.sanity_checking:
            log_dir = self.trainer.log_dir or self.trainer.default_root_dir  # log_dir: call on every rank
            if self.trainer.is_global_zero:
                args = (log_dir, self.trainer.ckpt_path, self.trainer.world_size)
                for name, member, evaluator in zip(names or [], members, self.member_evaluators[stage] if names else []):
                    report_stage(member, f"{stage}_{name}", evaluator.protocol, *args)
                protocol = self.stage_evaluators[stage].protocol
                report_stage(values, stage + ("_mean_over_members" if names else ""), protocol, *args)
            if stage == "test" and "images" in values and float(values["images"]) == 0:
                skipped = int(values.get("skipped", torch.tensor(0)))
                raise EmptySupervisionError(
                    f"test: no image was scored ({skipped} skipped: none has a ground-truth pixel in the protocol's "
                    f"depth range); check the data's depth unit and model.min_depth/max_depth "
                    "(depthlab data stats --config ... shows what is read)")

    def _log_panels(self, batch: DepthSample, out: DepthOutput) -> None:
        experiment = getattr(self.logger, "experiment", None)
        n = min(self.hparams.log_images, out.prediction.shape[0])
        if n == 0 or not hasattr(experiment, "add_image") or self.trainer.sanity_checking:
            return
        mask = self.valid_mask(batch)
        log_var = out.log_variance
        depth = out.depth
        if depth is None:  # a relative network: shown aligned to the ground truth, as it is scored
            protocol = self.stage_evaluators["val"].protocol
            depth = align_scale_shift(out.prediction[:n], batch["depth"][:n], mask[:n], "inverse_depth", RELATIVE,
                                      protocol.max_depth)[0]
        rows = [
            depth_panel(batch["image"][i], batch["depth"][i], mask[i], depth[i], None if log_var is None else log_var[i])
            for i in range(n)
        ]
        name = "val/image_gt_pred" + ("_sigma" if log_var is not None else "")
        experiment.add_image(name, torch.cat(rows, dim=1), self.global_step)
