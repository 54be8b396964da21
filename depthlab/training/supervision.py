"""No silent empty supervision: ground truth that never counts is an error, not ``loss=0.000``.

A data module whose depth is read in the wrong unit (kilometres for metres, millimetres for metres)
puts every pixel outside the model's ``(min_depth, max_depth)``: the supervised loss then sees no
pixel, training "converges" at 0 and every metric is NaN. :class:`SupervisionCheck` looks at the
masks the loss and the metrics already compute:

- at the start of a stage (``train``, ``val``), a batch in which no image has one valid pixel is an
  :class:`EmptySupervisionError` naming the data module, the depth range and the percentiles of the
  depth values that were actually read (the wrong unit is visible at once);
- later, images without a valid pixel are counted (``train/empty_images`` per epoch) and warned
  about once per epoch, as the non-finite guard counts skipped steps.
"""

from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from depthlab.errors import ConfigError


class EmptySupervisionError(ConfigError):
    """No ground-truth pixel counts at the start of a run (see the module docstring)."""


def depth_read_summary(depth: Tensor) -> str:
    """What the batch's ground truth holds: percentiles of the values > 0, or that there are none."""
    values = depth[torch.isfinite(depth) & (depth > 0)].float()
    if values.numel() == 0:
        return "no depth value > 0 was read at all (every pixel is 'no measurement')"
    if values.numel() > 100_000:
        values = values[torch.randperm(values.numel(), generator=torch.Generator().manual_seed(0))[:100_000].to(values.device)]
    p = torch.quantile(values, torch.tensor([0.01, 0.5, 0.99], device=values.device)).tolist()
    return (f"the depth values read are p1 {p[0]:.4g}, p50 {p[1]:.4g}, p99 {p[2]:.4g} m "
            f"({values.numel()} of {depth.numel()} pixels > 0)")


class SupervisionCheck:
    """Per stage: has any batch had a valid pixel yet, and how many images had none this epoch."""

    def __init__(self) -> None:
        self.seen: dict[str, bool] = {}
        self.empty: dict[str, int] = {}

    def reset_epoch(self, stage: str) -> int:
        """The count of images without a valid pixel since the last reset (then zero again)."""
        return self.empty.pop(stage, 0)

    def check(self, stage: str, depth: Tensor, mask: Tensor, datamodule: object, depth_range: str) -> None:
        """``mask`` (B, 1, H, W): the pixels whose ground truth counts; ``depth``: the batch's ground truth."""
        has = mask.flatten(1).any(1)
        if not self.seen.get(stage):
            if not bool(has.any()):
                raise EmptySupervisionError(
                    f"{stage}: no pixel of the first batch has ground truth that counts (data module "
                    f"{type(datamodule).__name__}, depth range {depth_range}); {depth_read_summary(depth)}: "
                    "check the depth unit of the data (e.g. data.depth_scale) or model.min_depth/max_depth "
                    "(depthlab data stats --config ... shows what is read)")
            self.seen[stage] = True
        empty = int((~has).sum())
        if empty:
            first = stage not in self.empty
            self.empty[stage] = self.empty.get(stage, 0) + empty
            if first:
                rank_zero_warn(f"{stage}: {empty} image(s) of a batch have no ground-truth pixel in the depth range "
                               f"{depth_range}; they add nothing to the supervised loss (counted as "
                               f"{stage}/empty_images per epoch)")
