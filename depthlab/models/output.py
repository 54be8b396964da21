"""``DepthOutput``: what every depthlab network returns, the one place where its units are fixed.

A network's head converts once (:class:`depthlab.models.heads.DepthHead`): whatever the network
predicts internally (depth or inverse depth), ``depth`` is always metres, so losses, metrics,
panels and prediction files never see 1/m by mistake. Fields a network does not predict are None.

    out = net(image)            # image (B, 3, H, W) RGB in [0, 1]
    out.depth                   # (B, 1, H, W) metres, in [min_depth, max_depth], float32
    out.inverse_depth           # (B, 1, H, W) 1/m, only for ``output: inverse_depth`` networks
    out.log_variance            # (B, 1, H, W) ln sigma^2 of ln(depth), only with ``uncertainty: true``
    out.scales                  # coarser predictions (each a DepthOutput, no nested scales), finest first
    out.poses                   # {k: (B, 4, 4)} target camera -> frame k's camera, from a pose network
                                # (monocular video training: DepthModule's pose_net fills it; else None)

A *relative* network (MiDaS/DPT, Depth Anything's relative models: an affine-invariant inverse
depth, known only up to a scale and a shift) fills ``relative_inverse_depth`` instead, and its
``depth`` is None: nothing can read it as metres. Metric losses refuse it at start-up, evaluation
needs a per-image alignment (``eval_protocol.align: scale_shift``), ``predict`` writes it as
float32 ``.npy`` and a colour map, ``export`` names the output ``relative_inverse_depth``.
:attr:`DepthOutput.kind` says which of the two a prediction is, :attr:`DepthOutput.prediction`
gives its main map either way.

"Disparity" in depthlab means pixels (stereo matching, ``depthlab.geometry``); inverse depth is 1/m.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import Tensor

OUTPUT_FIELDS = ("depth", "inverse_depth", "relative_inverse_depth", "log_variance")
OutputKind = Literal["depth", "relative_inverse_depth"]
RELATIVE = "relative_inverse_depth"


class RelativeDepthError(ValueError):
    """A metric quantity (metres, 1/m) was asked of a relative (affine-invariant) prediction."""


@dataclass
class DepthOutput:
    """A network's prediction (see the module docstring): ``depth`` (metres) or
    ``relative_inverse_depth`` (no unit), exactly one of the two; the rest optional."""

    depth: Tensor | None
    inverse_depth: Tensor | None = None
    log_variance: Tensor | None = None
    scales: list[DepthOutput] = field(default_factory=list)
    relative_inverse_depth: Tensor | None = None
    poses: dict[int, Tensor] | None = None

    def __post_init__(self) -> None:
        if (self.depth is None) == (self.relative_inverse_depth is None):
            raise ValueError("DepthOutput: give exactly one of depth (metres) and relative_inverse_depth")
        if self.depth is None and self.inverse_depth is not None:
            raise ValueError("DepthOutput: a relative prediction has no metric inverse_depth")

    @property
    def kind(self) -> OutputKind:
        """``depth`` (metres) or ``relative_inverse_depth`` (affine-invariant, no unit)."""
        return "depth" if self.depth is not None else RELATIVE

    @property
    def is_relative(self) -> bool:
        return self.depth is None

    @property
    def prediction(self) -> Tensor:
        """The main map: ``depth`` (metres) or, for a relative network, ``relative_inverse_depth``."""
        return self.depth if self.depth is not None else self.relative_inverse_depth  # type: ignore[return-value]

    @property
    def predicts_inverse_depth(self) -> bool:
        """True when the network's native quantity is inverse depth, metric or relative (resize it, not depth)."""
        return self.inverse_depth is not None or self.relative_inverse_depth is not None

    def metric_depth(self, what: str = "this") -> Tensor:
        """``depth``, or a :class:`RelativeDepthError` naming ``what`` needed metres."""
        if self.depth is None:
            raise RelativeDepthError(
                f"{what} needs depth in metres, but the network predicts relative inverse depth (known only up to "
                "a scale and a shift): align it to ground truth (model.eval_protocol.align: scale_shift), train it "
                "with a relative loss (ssi, gradient_matching), or make the network metric (model.net.kind: metric)"
            )
        return self.depth

    def inverse(self) -> Tensor:
        """Inverse depth (1/m): the network's own when it predicts it, else 1 / depth. Metric only."""
        if self.inverse_depth is not None:
            return self.inverse_depth
        depth = self.metric_depth("inverse depth (1/m)")
        return 1.0 / depth.clamp_min(torch.finfo(depth.dtype).tiny)

    def available(self) -> frozenset[str]:
        """Names of the fields that are set (``scales`` when non-empty)."""
        names = {name for name in OUTPUT_FIELDS if getattr(self, name) is not None}
        return frozenset(names | ({"scales"} if self.scales else set()) | ({"poses"} if self.poses else set()))

    def map(self, fn) -> DepthOutput:
        """Apply ``fn`` to every map (same for each of ``scales``): crop, flip, detach. ``poses`` are
        not maps and are kept as they are (:meth:`select` picks their samples)."""
        return replace(
            self,
            **{name: None if getattr(self, name) is None else fn(getattr(self, name)) for name in OUTPUT_FIELDS},
            scales=[s.map(fn) for s in self.scales],
        )

    def select(self, index: Tensor) -> DepthOutput:
        """The samples ``index`` (bool mask or integer indices over the batch axis), poses included."""
        out = self.map(lambda t: t[index])
        if self.poses:
            out = replace(out, poses={k: pose[index] for k, pose in self.poses.items()})
        return out

    def as_tensor(self) -> Tensor:
        """(B, C, H, W): the main map (:attr:`prediction`), then log_variance when present (prediction files, export)."""
        parts = [self.prediction] + ([self.log_variance] if self.log_variance is not None else [])
        return torch.cat(parts, dim=1)
