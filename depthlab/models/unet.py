"""U-Net on any timm encoder (the default depthlab network)."""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depthlab.errors import ConfigError

from depthlab.models.encoders import DepthHead, create_encoder, encoder_mean_std


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(32, channels // 4) or 1, channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"model.net.norm: expected 'batch', 'group' or 'none', got {kind!r}")


class ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=norm == "none"), _norm(norm, cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=norm == "none"), _norm(norm, cout), nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """U-Net: a timm ``features_only`` encoder, one decoder block per skip, a depth head.

    Each decoder block upsamples to its skip's exact size (so any input size works, divisible by
    32 or not), concatenates the skip and applies two 3x3 conv-norm-ReLU layers. The last block's
    output is upsampled to the input resolution and mapped to metres by :class:`DepthHead`.

    Args:
        encoder: any timm model name that supports ``features_only``.
        pretrained: False, True (timm hub weights) or a local weight file path.
        decoder_channels: width of each decoder block, deepest first; its length is the number of
            skips used (missing entries repeat the last width).
        norm: ``batch``, ``group`` or ``none``.
        upsample: ``nearest`` or ``bilinear``.
        min_depth, max_depth: output range in metres.
    """

    def __init__(
        self,
        encoder: str = "resnet18",
        pretrained: bool | str = False,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        norm: Literal["batch", "group", "none"] = "batch",
        upsample: Literal["nearest", "bilinear"] = "bilinear",
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
    ) -> None:
        super().__init__()
        if upsample not in ("nearest", "bilinear"):
            raise ConfigError(f"model.net.upsample: expected 'nearest' or 'bilinear', got {upsample!r}")
        self.encoder = create_encoder(encoder, pretrained)
        mean, std = encoder_mean_std(self.encoder)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        channels = list(self.encoder.feature_info.channels())  # shallow -> deep
        widths = list(decoder_channels)[: len(channels) - 1] or [64]
        widths += [widths[-1]] * (len(channels) - 1 - len(widths))
        self.upsample = upsample
        blocks = []
        cin = channels[-1]
        for skip_ch, width in zip(reversed(channels[:-1]), widths):
            blocks.append(ConvBlock(cin + skip_ch, width, norm))
            cin = width
        self.decoder = nn.ModuleList(blocks)
        self.final = nn.Sequential(ConvBlock(cin, max(cin // 2, 8), norm), nn.Conv2d(max(cin // 2, 8), 1, 3, padding=1))
        self.head = DepthHead(min_depth, max_depth)

    def _up(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        if self.upsample == "bilinear":
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return F.interpolate(x, size=size, mode="nearest")

    def forward(self, image: Tensor) -> Tensor:
        feats = self.encoder((image - self.mean) / self.std)
        x = feats[-1]
        for block, skip in zip(self.decoder, reversed(feats[:-1])):
            x = block(torch.cat([self._up(x, skip.shape[-2:]), skip], dim=1))
        x = self.final(self._up(x, image.shape[-2:]))
        return self.head(x)
