"""The output head every depthlab network ends with: the output contract lives here, once.

A network's last layer produces ``logits`` with :attr:`DepthHead.out_channels` channels; the head
maps them to:

- channel 0: depth in metres, ``min_depth + (max_depth - min_depth) * sigmoid(x)`` (``output="depth"``,
  the default), or disparity (inverse depth, 1/m) ``1/max_depth + (1/min_depth - 1/max_depth) * sigmoid(x)``
  (``output="disparity"``, monodepth2's parameterisation; depth = 1 / disparity);
- channel 1, only with ``uncertainty=True``: a positive scale ``sigma = softplus(x) + 1e-3`` in the
  unit of channel 0, for uncertainty-weighted losses such as ``|r| / sigma + log(sigma)`` (the
  Depth Hints "hard supervision with predicted uncertainty" mode).

So the default output is (B, 1, H, W); ``uncertainty=True`` gives (B, 2, H, W). Both channels are
positive and finite by construction, and always float32 (also under bf16/fp16 autocast).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depthlab.errors import ConfigError

Output = Literal["depth", "disparity"]
SIGMA_FLOOR = 1e-3  # keeps log(sigma) and r / sigma finite for an untrained network


class DepthHead(nn.Module):
    """Maps logits to depth in [min_depth, max_depth] metres (or disparity), plus optional uncertainty.

    Positive by construction; bounded so that an untrained network cannot emit inf or 0.
    """

    def __init__(
        self, min_depth: float, max_depth: float, output: Output = "depth", uncertainty: bool = False
    ) -> None:
        super().__init__()
        if not 0 < min_depth < max_depth:
            raise ConfigError(f"need 0 < min_depth < max_depth, got min_depth={min_depth}, max_depth={max_depth}")
        if output not in ("depth", "disparity"):
            raise ConfigError(f"model.net.output: expected 'depth' or 'disparity', got {output!r}")
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.output = output
        self.uncertainty = bool(uncertainty)
        if output == "depth":
            self.low, self.high = self.min_depth, self.max_depth
        else:
            self.low, self.high = 1.0 / self.max_depth, 1.0 / self.min_depth

    @property
    def out_channels(self) -> int:
        """Channels of the logits this head expects (and of its output)."""
        return 2 if self.uncertainty else 1

    def forward(self, logits: Tensor) -> Tensor:
        logits = logits.float()  # the contract is float32 metres even under autocast
        value = self.low + (self.high - self.low) * torch.sigmoid(logits[:, :1])
        if not self.uncertainty:
            return value
        sigma = F.softplus(logits[:, 1:2]) + SIGMA_FLOOR
        return torch.cat([value, sigma], dim=1)

    def extra_repr(self) -> str:
        return f"output={self.output}, range=[{self.low:g}, {self.high:g}], uncertainty={self.uncertainty}"
