"""``DepthOutput``: what every depthlab network returns, the one place where its units are fixed.

A network's head converts once (:class:`depthlab.models.heads.DepthHead`): whatever the network
predicts internally (depth or inverse depth), ``depth`` is always metres, so losses, metrics,
panels and prediction files never see 1/m by mistake. Fields a network does not predict are None.

    out = net(image)            # image (B, 3, H, W) RGB in [0, 1]
    out.depth                   # (B, 1, H, W) metres, in [min_depth, max_depth], float32
    out.inverse_depth           # (B, 1, H, W) 1/m, only for ``output: inverse_depth`` networks
    out.log_variance            # (B, 1, H, W) ln sigma^2 of ln(depth), only with ``uncertainty: true``
    out.scales                  # coarser predictions (each a DepthOutput, no nested scales), finest first

"Disparity" in depthlab means pixels (stereo matching, ``depthlab.geometry``); inverse depth is 1/m.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

OUTPUT_FIELDS = ("depth", "inverse_depth", "log_variance")


@dataclass
class DepthOutput:
    """A network's prediction (see the module docstring). ``depth`` is required, the rest optional."""

    depth: Tensor
    inverse_depth: Tensor | None = None
    log_variance: Tensor | None = None
    scales: list[DepthOutput] = field(default_factory=list)

    @property
    def predicts_inverse_depth(self) -> bool:
        """True when the network's native quantity is inverse depth (resize it, not depth)."""
        return self.inverse_depth is not None

    def inverse(self) -> Tensor:
        """Inverse depth (1/m): the network's own when it predicts it, else 1 / depth."""
        if self.inverse_depth is not None:
            return self.inverse_depth
        return 1.0 / self.depth.clamp_min(torch.finfo(self.depth.dtype).tiny)

    def available(self) -> frozenset[str]:
        """Names of the fields that are set (``depth`` always; ``scales`` when non-empty)."""
        names = {name for name in OUTPUT_FIELDS if getattr(self, name) is not None}
        return frozenset(names | ({"scales"} if self.scales else set()))

    def map(self, fn) -> DepthOutput:
        """Apply ``fn`` to every tensor field (same for each of ``scales``): select, crop, flip, detach."""
        return replace(
            self,
            depth=fn(self.depth),
            inverse_depth=None if self.inverse_depth is None else fn(self.inverse_depth),
            log_variance=None if self.log_variance is None else fn(self.log_variance),
            scales=[s.map(fn) for s in self.scales],
        )

    def select(self, index: Tensor) -> DepthOutput:
        """The samples ``index`` (bool mask or integer indices over the batch axis)."""
        return self.map(lambda t: t[index])

    def as_tensor(self) -> Tensor:
        """(B, C, H, W): depth, then log_variance when present (prediction files, export)."""
        parts = [self.depth] + ([self.log_variance] if self.log_variance is not None else [])
        return torch.cat(parts, dim=1)
