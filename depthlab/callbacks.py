"""Lightning callbacks for the depthlab CLI: prediction writing, performance options, summary.

Add them under ``trainer.callbacks`` in a YAML config::

    trainer:
      precision: bf16-mixed          # mixed precision is Lightning's own option
      callbacks:
        - class_path: depthlab.callbacks.PerformanceOptions
          init_args: {channels_last: true, compile: false}
        - class_path: depthlab.callbacks.NetworkSummaryCallback
        - class_path: depthlab.callbacks.DepthPredictionWriter   # acts in `depthlab predict`
          init_args: {output_dir: predictions, format: png16}

The performance callbacks act on ``pl_module.net`` (DepthModule's network), or on the whole
module if it has no ``net``. Networks themselves know nothing of Lightning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

import cv2
import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from depthlab.errors import ConfigError
from depthlab.models.output import DepthOutput
from depthlab.models.performance import (
    compile_network,
    compile_unavailable_reason,
    image_to_channels_last,
    summarize,
    to_channels_last,
)


class DepthPredictionWriter(BasePredictionWriter):
    """Writes each predicted depth map of ``depthlab predict`` to ``output_dir``.

    Files are named by the sample's index in the predict data set (``000042.npy``), so they line
    up with its file list on any number of devices.

    Args:
        output_dir: folder to write to (created).
        format: ``npy`` (float32 metres, (H, W)) or ``png16`` (uint16, depth * ``png_scale``,
            0 = no depth: the KITTI convention with scale 256, NYU's with 1000).
        png_scale: metres -> PNG units for ``png16``.
    """

    def __init__(self, output_dir: str = "predictions", format: Literal["npy", "png16"] = "npy", png_scale: float = 256.0) -> None:
        super().__init__(write_interval="batch")
        if format not in ("npy", "png16"):
            raise ConfigError(f"DepthPredictionWriter.format: expected 'npy' or 'png16', got {format!r}")
        self.output_dir = Path(output_dir)
        self.format = format
        self.png_scale = png_scale

    def write_on_batch_end(
        self, trainer, pl_module, prediction: DepthOutput, batch_indices: Sequence[int] | None, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        depth = prediction.depth.detach().float().cpu().numpy()[:, 0]  # metres, whatever the network predicts
        if batch_indices is None:  # a sampler that does not report indices: number by batch
            batch_indices = [batch_idx * len(depth) + i for i in range(len(depth))]
        for index, d in zip(batch_indices, depth):
            stem = self.output_dir / f"{int(index):06d}"
            if self.format == "npy":
                np.save(stem.with_suffix(".npy"), d.astype(np.float32))
            else:
                png = np.clip(np.round(d * self.png_scale), 0, np.iinfo(np.uint16).max).astype(np.uint16)
                cv2.imwrite(str(stem.with_suffix(".png")), png)


def _network(pl_module: L.LightningModule) -> nn.Module:
    net = getattr(pl_module, "net", None)
    return net if isinstance(net, nn.Module) else pl_module


class PerformanceOptions(L.Callback):
    """channels_last memory format and optional ``torch.compile`` for the network.

    Args:
        channels_last: convert the network's weights and every batch's ``image`` to NHWC.
        compile: ``torch.compile`` the network (in place, checkpoint keys unchanged) at setup.
        compile_backend, compile_mode, compile_dynamic: passed to ``torch.compile``.
    """

    def __init__(
        self,
        channels_last: bool = False,
        compile: bool = False,
        compile_backend: str = "inductor",
        compile_mode: str | None = None,
        compile_dynamic: bool | None = None,
    ) -> None:
        self.channels_last = channels_last
        self.compile = compile
        self.compile_backend = compile_backend
        self.compile_mode = compile_mode
        self.compile_dynamic = compile_dynamic
        self._applied = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._applied:
            return
        net = _network(pl_module)
        if self.channels_last:
            to_channels_last(net)
        if self.compile:
            reason = compile_unavailable_reason(self.compile_backend, trainer.strategy.root_device.type)
            if reason is not None:
                raise ConfigError(f"PerformanceOptions(compile=true): {reason}")
            compile_network(net, self.compile_backend, self.compile_mode, self.compile_dynamic)
        self._applied = True

    def _convert(self, batch: Any) -> None:
        if self.channels_last and isinstance(batch, dict) and "image" in batch:
            batch["image"] = image_to_channels_last(batch["image"])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self._convert(batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        self._convert(batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        self._convert(batch)

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: ANN001
        self._convert(batch)


class NetworkSummaryCallback(L.Callback):
    """At the first training batch, log the network's parameters, input/output sizes and forward FLOPs.

    Lightning's own ``ModelSummary`` prints layer parameter counts at fit start but knows no input
    size. This runs one extra forward pass, in eval mode without gradients (the training mode is
    restored), on the first image of the first training batch, eagerly even when the network was
    compiled, and logs one line (``rank_zero_info``) such as ``network UNet: 14.33 M parameters
    (14.33 M trainable), input (3, 96, 128) -> depth (1, 96, 128), 2.02 GFLOPs/image (forward)``,
    naming the extra :class:`~depthlab.models.output.DepthOutput` fields and scales the network
    returns, and the metrics ``net/parameters_M``, ``net/trainable_M`` and ``net/gflops_per_image``
    to every logger. The result stays in :attr:`summary`.

    Args:
        flops: count FLOPs (``torch.utils.flop_counter``, 2 per multiply-add); false reports
            parameters and sizes only (the FLOP counter slows that one forward pass down).
    """

    def __init__(self, flops: bool = True) -> None:
        self.flops = flops
        self.summary = None
        self._done = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if self._done or not isinstance(batch, dict) or "image" not in batch:
            return
        self._done = True
        self.summary = summarize(_network(pl_module), batch["image"], flops=self.flops)
        rank_zero_info(str(self.summary))
        for logger in trainer.loggers:
            logger.log_metrics(self.summary.as_metrics(), step=trainer.global_step)
