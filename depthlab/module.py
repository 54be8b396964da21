"""``DepthModule``: the one LightningModule of depthlab (network + loss + metrics + optimiser)."""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from depthlab import losses, models
from depthlab.data.batch import DepthSample
from depthlab.errors import ConfigError
from depthlab.eval import build_protocol, format_table, write_report
from depthlab.eval.distributed import loader_sampler, real_sample_mask
from depthlab.metrics import DepthMetrics, ScaleRatios, valid_depth_mask
from depthlab.visualize import depth_panel

Stage = Literal["train", "val", "test"]


class DepthModule(L.LightningModule):
    """Supervised monocular depth: ``net(image) -> depth (m)`` trained with a (weighted) loss.

    Args:
        net: the network, by registry name (``unet``) or a mapping ``{name: unet, encoder: resnet34}``
            (or ``class_path``/``init_args``). ``min_depth``/``max_depth`` are passed to it.
        loss: the objective: a loss name, a mapping with its arguments, or a list of mappings each
            with a ``weight`` (their weighted sum; every term is logged).
        min_depth, max_depth: metres. The network's output range, and the ground-truth range that
            counts as valid (outside it, as for gt <= 0 or non-finite, pixels are masked out of the
            loss and the metrics).
        lr, weight_decay, betas: AdamW.
        scheduler: ``cosine`` (linear warm-up then cosine decay to ``min_lr_ratio * lr``),
            ``onecycle`` (``torch.optim.lr_scheduler.OneCycleLR``) or ``none``; stepped per batch.
        warmup: warm-up length, a fraction of all training steps (< 1) or a number of steps.
        log_images: how many image | ground truth | prediction panels to log per validation.
        loss_min_depth: metres; ground truth at or below it is also left out of the loss (not of
            the metrics). BTS trains on gt > 0.1 m (NYU) and > 1.0 m (KITTI); ``null``: no extra
            threshold, the loss sees every valid pixel.
        eval_protocol: how validation and test metrics are computed: ``none`` (this model's depth
            range, no crop), ``nyu``, ``kitti``, or a mapping ``{name: kitti, crop: eigen,
            kb_crop: true, median_scaling: false, flip: monodepth, averaging: image, ...}``
            (see :class:`depthlab.eval.EvalProtocol`). Under DDP every evaluation image is counted
            exactly once: the samples Lightning's DistributedSampler repeats to pad the last
            batch get zero weight in the metrics.
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
        scheduler: Literal["cosine", "onecycle", "none"] = "cosine",
        warmup: float = 0.05,
        min_lr_ratio: float = 0.01,
        log_images: int = 4,
        eval_protocol: str | dict[str, Any] = "none",
        loss_min_depth: float | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= min_depth < max_depth:
            raise ConfigError(f"model: need 0 <= min_depth < max_depth, got {min_depth} and {max_depth}")
        if scheduler not in ("cosine", "onecycle", "none"):
            raise ConfigError(f"model.scheduler: expected cosine, onecycle or none, got {scheduler!r}")
        # eval_protocol belongs to the evaluation, not to the weights: kept out of the checkpoint's
        # hparams, so `depthlab test --ckpt_path X --model.eval_protocol kitti` is not overridden
        # by the value the checkpoint was trained with (LightningCLI re-applies checkpoint hparams).
        self.save_hyperparameters(ignore=["eval_protocol"])
        self.net = models.build(net, min_depth=max(min_depth, 1e-3), max_depth=max_depth)
        self.loss = losses.build_objective(loss)
        self.protocol = build_protocol(eval_protocol, min_depth=min_depth, max_depth=max_depth)
        p = self.protocol
        self.val_metrics = DepthMetrics(p.min_depth, p.max_depth, p.averaging)
        self.test_metrics = DepthMetrics(p.min_depth, p.max_depth, p.averaging)
        self.val_ratios = ScaleRatios()
        self.test_ratios = ScaleRatios()
        self._eval_seen: dict[int, int] = {}  # samples seen per dataloader this epoch (this rank)

    def forward(self, image: Tensor) -> Tensor:
        return self.net(image)

    def valid_mask(self, batch: DepthSample) -> Tensor:
        """Pixels whose ground truth is a finite measurement inside (min_depth, max_depth)."""
        return valid_depth_mask(batch["depth"], self.hparams.min_depth, self.hparams.max_depth, batch.get("valid"))

    def _step(self, batch: DepthSample, stage: Stage) -> tuple[Tensor, Tensor, Tensor]:
        image, gt = batch["image"], batch["depth"]
        mask = self.valid_mask(batch)
        pred = self(image)
        loss_mask = mask if self.hparams.loss_min_depth is None else mask & (gt > self.hparams.loss_min_depth)
        # Non-finite ground truth is masked, but 0 * NaN is NaN: replace it before any loss sees it.
        gt = torch.where(loss_mask, gt, torch.ones_like(gt))
        total, parts = self.loss(pred, gt, loss_mask, image=image)
        bs = image.shape[0]
        self.log(f"{stage}/loss", total, prog_bar=stage == "train", batch_size=bs, sync_dist=stage != "train")
        if len(parts) > 1:
            for name, value in parts.items():
                self.log(f"{stage}/loss_{name}", value, batch_size=bs, sync_dist=stage != "train")
        return total, pred, mask

    def training_step(self, batch: DepthSample, batch_idx: int) -> Tensor:
        loss, _, _ = self._step(batch, "train")
        return loss

    def validation_step(self, batch: DepthSample, batch_idx: int, dataloader_idx: int = 0) -> None:
        _, pred, mask = self._step(batch, "val")
        self._update_metrics(batch, pred, "val", dataloader_idx)
        if batch_idx == 0:
            self._log_panels(batch, pred, mask)

    def on_validation_epoch_start(self) -> None:
        self._eval_seen = {}

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def test_step(self, batch: DepthSample, batch_idx: int, dataloader_idx: int = 0) -> None:
        _, pred, _ = self._step(batch, "test")
        self._update_metrics(batch, pred, "test", dataloader_idx)

    def on_test_epoch_start(self) -> None:
        self._eval_seen = {}

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def predict_step(self, batch: DepthSample, batch_idx: int) -> Tensor:
        return self(batch["image"])

    def _update_metrics(self, batch: DepthSample, pred: Tensor, stage: Stage, dataloader_idx: int) -> None:
        """Evaluate ``pred`` (or the protocol's own prediction) on the batch's real samples."""
        image, gt, valid = batch["image"], batch["depth"], batch.get("valid")
        offset, full = batch.get("crop_offset"), batch.get("full_size")
        real = self._real_samples(stage, dataloader_idx, image.shape[0])
        if real is not None:
            image, gt, pred = image[real], gt[real], pred[real]
            valid = None if valid is None else valid[real]
            offset, full = (None, None) if offset is None else (offset[real], full[real])
        if self.protocol.needs_own_forward and image.shape[0] > 0:
            pred = self.protocol.predict(self, image, gt.shape[-2:])
        if offset is None or image.shape[0] == 0:
            parts = [(pred, gt, valid, None)]
        else:  # windows of larger frames (KB-cropped eval): crops are placed on each full frame
            parts = [
                (pred[i : i + 1], gt[i : i + 1], None if valid is None else valid[i : i + 1],
                 (*offset[i].tolist(), *full[i].tolist()))
                for i in range(gt.shape[0])
            ]
        for p, g, v, window in parts:
            ev = self.protocol.prepare(p, g, v, window)
            # Updated even with no real sample left: every rank then holds states for the sync.
            getattr(self, f"{stage}_metrics").update(ev.pred, ev.gt, ev.mask)
            if self.protocol.median_scaling:
                getattr(self, f"{stage}_ratios").update(ev.ratios)

    def _real_samples(self, stage: Stage, dataloader_idx: int, batch_size: int) -> Tensor | None:
        """Bool (B,) mask of the batch's samples that are not DistributedSampler repeats (None: all are real)."""
        start = self._eval_seen.get(dataloader_idx, 0)
        self._eval_seen[dataloader_idx] = start + batch_size
        loaders = self.trainer.val_dataloaders if stage == "val" else self.trainer.test_dataloaders
        sampler = loader_sampler(loaders[dataloader_idx] if isinstance(loaders, (list, tuple)) else loaders)
        if sampler is None or sampler.num_replicas == 1:
            if self.trainer.world_size > 1 and start == 0 and not self.trainer.sanity_checking:
                rank_zero_warn(
                    f"{stage} data is not split by a DistributedSampler on {self.trainer.world_size} devices: "
                    "depthlab cannot tell repeated samples apart and the metrics may count images twice."
                )
            return None
        if sampler.drop_last and start == 0:
            rank_zero_warn(f"{stage} DistributedSampler has drop_last=True: some images are not evaluated.")
        n = len(sampler.dataset)
        real = real_sample_mask(sampler.rank, sampler.num_replicas, n, start, batch_size, self.device)
        return None if bool(real.all()) else real

    def _log_metrics(self, stage: Stage) -> None:
        metric: DepthMetrics = getattr(self, f"{stage}_metrics")
        values = metric.compute()
        metric.reset()
        if self.protocol.median_scaling:
            ratios: ScaleRatios = getattr(self, f"{stage}_ratios")
            values.update(ratios.compute())
            ratios.reset()
        for name, value in values.items():
            # Already summed over devices by compute(); sync_dist averages equal numbers (a no-op)
            # and keeps Lightning from warning about unsynced epoch-level values.
            self.log(f"{stage}/{name}", value.float(), prog_bar=name in ("abs_rel", "delta1"), sync_dist=True)
        if self.trainer.state.fn in (TrainerFn.VALIDATING, TrainerFn.TESTING) and not self.trainer.sanity_checking:
            self._report(values, stage)

    def _report(self, values: dict[str, Tensor], stage: Stage) -> None:
        """After a stand-alone ``validate``/``test``: print the table, write ``<stage>_metrics.json``."""
        log_dir = self.trainer.log_dir or self.trainer.default_root_dir  # log_dir: call on every rank
        if not self.trainer.is_global_zero:
            return
        path = write_report(
            os.path.join(log_dir, f"{stage}_metrics.json"),
            values,
            stage=stage,
            protocol=dataclasses.asdict(self.protocol),
            ckpt_path=self.trainer.ckpt_path,
            devices=self.trainer.world_size,
        )
        print(format_table(values, title=f"depthlab {stage} ({self.protocol.describe()})"))
        print(f"metrics written to {path}")

    def _log_panels(self, batch: DepthSample, pred: Tensor, mask: Tensor) -> None:
        experiment = getattr(self.logger, "experiment", None)
        n = min(self.hparams.log_images, pred.shape[0])
        if n == 0 or not hasattr(experiment, "add_image") or self.trainer.sanity_checking:
            return
        rows = [depth_panel(batch["image"][i], batch["depth"][i], mask[i], pred[i]) for i in range(n)]
        experiment.add_image("val/image_gt_pred", torch.cat(rows, dim=1), self.global_step)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay, betas=tuple(hp.betas))
        if hp.scheduler == "none":
            return optimizer
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = int(hp.warmup * total) if hp.warmup < 1 else int(hp.warmup)
        if hp.scheduler == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=hp.lr, total_steps=total, pct_start=max(warmup, 1) / total
            )
        else:
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, warmup, hp.min_lr_ratio))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float):
    """LR factor: linear from 1/warmup to 1 over ``warmup_steps``, then cosine to ``min_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
