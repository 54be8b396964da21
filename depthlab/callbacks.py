"""Callbacks for the depthlab CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

import cv2
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from depthlab.errors import ConfigError


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
        self, trainer, pl_module, prediction: torch.Tensor, batch_indices: Sequence[int] | None, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        depth = prediction.detach().float().cpu().numpy()[:, 0]
        if batch_indices is None:  # a sampler that does not report indices: number by batch
            batch_indices = [batch_idx * len(depth) + i for i in range(len(depth))]
        for index, d in zip(batch_indices, depth):
            stem = self.output_dir / f"{int(index):06d}"
            if self.format == "npy":
                np.save(stem.with_suffix(".npy"), d.astype(np.float32))
            else:
                png = np.clip(np.round(d * self.png_scale), 0, np.iinfo(np.uint16).max).astype(np.uint16)
                cv2.imwrite(str(stem.with_suffix(".png")), png)
