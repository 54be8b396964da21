"""Depth colour maps (turbo): preview files of ``depthlab predict`` and image | ground truth |
prediction panels for TensorBoard."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor


def turbo_rgb(depth_m: np.ndarray, vmax: float) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 RGB: 0 m dark blue ... ``vmax`` and beyond dark red (turbo).

    Non-finite depth is drawn as 0 m.
    """
    d = np.nan_to_num(np.asarray(depth_m, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    scaled = np.clip(d / max(vmax, 1e-6), 0, 1)
    return cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[:, :, ::-1].copy()


def colorize_depth(depth: Tensor, vmax: float, valid: Tensor | None = None) -> Tensor:
    """(H, W) metres -> (3, H, W) float RGB in [0, 1] with the turbo map; invalid pixels black."""
    d = depth.detach().float().cpu().numpy()
    out = torch.from_numpy(turbo_rgb(d, vmax) / 255.0).permute(2, 0, 1).float()
    if valid is not None:
        out = out * valid.detach().cpu().reshape(1, *d.shape).float()
    return out


def depth_panel(image: Tensor, gt: Tensor, valid: Tensor, pred: Tensor, log_variance: Tensor | None = None) -> Tensor:
    """One row: image | ground truth | prediction (| sigma), depths on one colour scale. Shapes (C, H, W).

    With ``log_variance`` (ln sigma^2 of ln depth, (1, H, W)) a fourth column shows sigma = exp(s / 2),
    the predicted relative error, on a 0..1 scale (brighter: less sure).
    """
    gt_valid = gt[valid]
    vmax = float(gt_valid.max()) if gt_valid.numel() else float(pred.max())
    columns = [image.detach().cpu().float().clamp(0, 1), colorize_depth(gt[0], vmax, valid[0]), colorize_depth(pred[0], vmax)]
    if log_variance is not None:
        columns.append(colorize_depth(torch.exp(0.5 * log_variance[0].detach().float()), 1.0))
    return torch.cat(columns, dim=2)
