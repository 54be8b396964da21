"""The output head every depthlab network ends with: the output contract lives here, once.

A network's last layer produces ``logits`` with :attr:`DepthHead.out_channels` channels; the head
maps them to a :class:`~depthlab.models.output.DepthOutput`:

- channel 0 with ``output="depth"`` (the default): depth in metres,
  ``depth = min_depth + (max_depth - min_depth) * sigmoid(x)``;
- channel 0 with ``output="inverse_depth"`` (Monodepth2's parameterisation, monodepth2 layers.py disp_to_depth):
  ``inverse_depth = 1/max_depth + (1/min_depth - 1/max_depth) * sigmoid(x)`` in 1/m, and
  ``depth = 1 / inverse_depth``: both are returned, depth always in metres;
- channel 1, only with ``uncertainty=True``: ``log_variance``, ln sigma^2 of the error of ln(depth),
  soft-bounded to (-LOG_VARIANCE_BOUND, LOG_VARIANCE_BOUND) by ``b * tanh(x / b)`` so that
  ``exp(-log_variance)`` in a negative log-likelihood can neither overflow nor vanish.

Every field is positive/finite by construction and float32 (also under bf16/fp16 autocast).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from depthlab.errors import ConfigError
from depthlab.models.output import DepthOutput

Output = Literal["depth", "inverse_depth"]
LOG_VARIANCE_BOUND = 10.0  # sigma of ln(depth) in (e^-5, e^5): from 0.7 % to 148x relative


def check_output(output: str) -> Output:
    if output == "disparity":
        raise ConfigError(
            "model.net.output: 'disparity' was renamed 'inverse_depth' (1/m); in depthlab 'disparity' means "
            "pixels (stereo matching). Use `output: inverse_depth`"
        )
    if output not in ("depth", "inverse_depth"):
        raise ConfigError(f"model.net.output: expected 'depth' or 'inverse_depth', got {output!r}")
    return output  # type: ignore[return-value]


class DepthHead(nn.Module):
    """Maps logits to a :class:`DepthOutput`: depth in [min_depth, max_depth] metres, optional extras.

    Positive by construction; bounded so that an untrained network cannot emit inf or 0.
    """

    def __init__(
        self, min_depth: float, max_depth: float, output: Output = "depth", uncertainty: bool = False
    ) -> None:
        super().__init__()
        if not 0 < min_depth < max_depth:
            raise ConfigError(f"need 0 < min_depth < max_depth, got min_depth={min_depth}, max_depth={max_depth}")
        self.output = check_output(output)
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.uncertainty = bool(uncertainty)
        if output == "depth":
            self.low, self.high = self.min_depth, self.max_depth
        else:
            self.low, self.high = 1.0 / self.max_depth, 1.0 / self.min_depth

    @property
    def out_channels(self) -> int:
        """Channels of the logits this head expects."""
        return 2 if self.uncertainty else 1

    @property
    def provides(self) -> frozenset[str]:
        """The :class:`DepthOutput` fields this head fills."""
        names = {"depth"}
        if self.output == "inverse_depth":
            names.add("inverse_depth")
        if self.uncertainty:
            names.add("log_variance")
        return frozenset(names)

    def forward(self, logits: Tensor) -> DepthOutput:
        logits = logits.float()  # the contract is float32 metres even under autocast
        value = self.low + (self.high - self.low) * torch.sigmoid(logits[:, :1])
        log_variance = None
        if self.uncertainty:
            log_variance = LOG_VARIANCE_BOUND * torch.tanh(logits[:, 1:2] / LOG_VARIANCE_BOUND)
        if self.output == "depth":
            return DepthOutput(depth=value, log_variance=log_variance)
        return DepthOutput(depth=1.0 / value, inverse_depth=value, log_variance=log_variance)

    def extra_repr(self) -> str:
        return f"output={self.output}, range=[{self.low:g}, {self.high:g}], uncertainty={self.uncertainty}"
