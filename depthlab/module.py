"""``DepthModule``: the one LightningModule of depthlab (network + loss + metrics + optimiser)."""

from __future__ import annotations

import math
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor

from depthlab import losses, models
from depthlab.data.batch import DepthSample
from depthlab.errors import ConfigError
from depthlab.metrics import DepthMetrics
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
    ) -> None:
        super().__init__()
        if not 0 <= min_depth < max_depth:
            raise ConfigError(f"model: need 0 <= min_depth < max_depth, got {min_depth} and {max_depth}")
        if scheduler not in ("cosine", "onecycle", "none"):
            raise ConfigError(f"model.scheduler: expected cosine, onecycle or none, got {scheduler!r}")
        self.save_hyperparameters()
        self.net = models.build(net, min_depth=max(min_depth, 1e-3), max_depth=max_depth)
        self.loss = losses.build_objective(loss)
        self.val_metrics = DepthMetrics()
        self.test_metrics = DepthMetrics()

    def forward(self, image: Tensor) -> Tensor:
        return self.net(image)

    def valid_mask(self, batch: DepthSample) -> Tensor:
        """Pixels whose ground truth is a finite measurement inside (min_depth, max_depth)."""
        gt = batch["depth"]
        mask = torch.isfinite(gt) & (gt > self.hparams.min_depth) & (gt < self.hparams.max_depth)
        if "valid" in batch:
            mask &= batch["valid"].bool()
        return mask

    def _step(self, batch: DepthSample, stage: Stage) -> tuple[Tensor, Tensor, Tensor]:
        image, gt = batch["image"], batch["depth"]
        mask = self.valid_mask(batch)
        pred = self(image)
        # Non-finite ground truth is masked, but 0 * NaN is NaN: replace it before any loss sees it.
        gt = torch.where(mask, gt, torch.ones_like(gt))
        total, parts = self.loss(pred, gt, mask, image=image)
        bs = image.shape[0]
        self.log(f"{stage}/loss", total, prog_bar=stage == "train", batch_size=bs, sync_dist=stage != "train")
        if len(parts) > 1:
            for name, value in parts.items():
                self.log(f"{stage}/loss_{name}", value, batch_size=bs, sync_dist=stage != "train")
        return total, pred, mask

    def training_step(self, batch: DepthSample, batch_idx: int) -> Tensor:
        loss, _, _ = self._step(batch, "train")
        return loss

    def validation_step(self, batch: DepthSample, batch_idx: int) -> None:
        _, pred, mask = self._step(batch, "val")
        self.val_metrics.update(pred, batch["depth"], mask)
        if batch_idx == 0:
            self._log_panels(batch, pred, mask)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics, "val")

    def test_step(self, batch: DepthSample, batch_idx: int) -> None:
        _, pred, mask = self._step(batch, "test")
        self.test_metrics.update(pred, batch["depth"], mask)

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics, "test")

    def predict_step(self, batch: DepthSample, batch_idx: int) -> Tensor:
        return self(batch["image"])

    def _log_metrics(self, metric: DepthMetrics, stage: Stage) -> None:
        values = metric.compute()
        metric.reset()
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=name in ("abs_rel", "delta1"))

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
