"""Small building blocks shared by depthlab's networks."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from depthlab.depth_ops import resize_depth
from depthlab.errors import ConfigError
from depthlab.models.output import DepthOutput

Norm = Literal["batch", "group", "none"]
Upsample = Literal["nearest", "bilinear"]


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``batch`` (BatchNorm2d), ``group`` (GroupNorm, groups of >= 4 channels, at most 32) or ``none``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(32, channels // 4) or 1, channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"model.net.norm: expected 'batch', 'group' or 'none', got {kind!r}")


class ConvNormReLU(nn.Sequential):
    """``k x k`` convolution (same padding), normalisation, ReLU."""

    def __init__(self, cin: int, cout: int, norm: str = "batch", kernel_size: int = 3) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=norm == "none"),
            norm_layer(norm, cout),
            nn.ReLU(inplace=True),
        )


def check_upsample(mode: str) -> str:
    if mode not in ("nearest", "bilinear"):
        raise ConfigError(f"model.net.upsample: expected 'nearest' or 'bilinear', got {mode!r}")
    return mode


def resize(x: Tensor, size: tuple[int, int] | list[int], mode: str = "bilinear") -> Tensor:
    """Resize (B, C, h, w) to exactly ``size`` (H, W).

    Always interpolates, also when ``x`` already has that size: there it is exact (bilinear
    without corner alignment samples every pixel at weight 1), and a Python branch on the shape
    would stop ``torch.export`` from treating H and W as dynamic.
    """
    if mode == "nearest":
        return F.interpolate(x, size=tuple(size), mode="nearest")
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def resize_output(out: DepthOutput, size: tuple[int, int] | list[int], mode: str = "bilinear") -> DepthOutput:
    """Resize a :class:`DepthOutput` to ``size``, interpolating the network's native quantity.

    An inverse-depth network's ``inverse_depth`` is interpolated and ``depth`` recomputed as its
    reciprocal (interpolating both would break ``depth == 1 / inverse_depth``); ``log_variance``
    is interpolated as it is, and so is a relative network's ``relative_inverse_depth``. ``scales``
    are passed on untouched, each at its own resolution.
    """
    log_variance = None if out.log_variance is None else resize(out.log_variance, size, mode)
    if out.is_relative:
        return DepthOutput(None, None, log_variance, out.scales, resize(out.relative_inverse_depth, size, mode))
    depth, inverse_depth = resize_depth(out.depth, size, out.predicts_inverse_depth,
                                        "nearest" if mode == "nearest" else "half_pixel", out.inverse_depth)
    return DepthOutput(depth, inverse_depth, log_variance, out.scales)
