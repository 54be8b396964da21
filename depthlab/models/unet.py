"""U-Net on any timm encoder (the default depthlab network)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from depthlab.models.encoders import create_encoder, encoder_mean_std
from depthlab.models.heads import DepthHead, Output
from depthlab.models.layers import ConvNormReLU, Norm, Upsample, check_upsample, resize


class ConvBlock(nn.Sequential):
    """Two 3x3 conv-norm-ReLU layers (one flat Sequential: its state-dict keys are stable)."""

    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__(*ConvNormReLU(cin, cout, norm), *ConvNormReLU(cout, cout, norm))


class UNet(nn.Module):
    """U-Net: a timm features_only encoder, one conv block per skip, a bounded depth head.

    Each decoder block upsamples to its skip's exact size (so any input size works, divisible by
    32 or not), concatenates the skip and applies two 3x3 conv-norm-ReLU layers. The last block's
    output is upsampled to the input resolution, refined by one more block and mapped to the
    output by :class:`~depthlab.models.heads.DepthHead`.

    Args:
        encoder: any timm model name that supports ``features_only``.
        pretrained: False, True (timm hub weights) or a local weight file path.
        decoder_channels: width of each decoder block, deepest first; its length is the number of
            skips used (missing entries repeat the last width).
        norm: ``batch``, ``group`` or ``none``.
        upsample: ``nearest`` or ``bilinear``.
        min_depth, max_depth: output range in metres.
        output: ``depth`` (metres) or ``disparity`` (1/m, in [1/max_depth, 1/min_depth]).
        uncertainty: add a second output channel, a positive uncertainty scale (see DepthHead).
    """

    def __init__(
        self,
        encoder: str = "resnet18",
        pretrained: bool | str = False,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        norm: Norm = "batch",
        upsample: Upsample = "bilinear",
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        output: Output = "depth",
        uncertainty: bool = False,
    ) -> None:
        super().__init__()
        self.upsample = check_upsample(upsample)
        self.head = DepthHead(min_depth, max_depth, output, uncertainty)
        self.encoder = create_encoder(encoder, pretrained)
        mean, std = encoder_mean_std(self.encoder)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        channels = list(self.encoder.feature_info.channels())  # shallow -> deep
        widths = list(decoder_channels)[: len(channels) - 1] or [64]
        widths += [widths[-1]] * (len(channels) - 1 - len(widths))
        blocks = []
        cin = channels[-1]
        for skip_ch, width in zip(reversed(channels[:-1]), widths):
            blocks.append(ConvBlock(cin + skip_ch, width, norm))
            cin = width
        self.decoder = nn.ModuleList(blocks)
        mid = max(cin // 2, 8)
        self.final = nn.Sequential(ConvBlock(cin, mid, norm), nn.Conv2d(mid, self.head.out_channels, 3, padding=1))

    def forward(self, image: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 1 or 2, H, W), see DepthHead."""
        feats = self.encoder((image - self.mean) / self.std)
        x = feats[-1]
        for block, skip in zip(self.decoder, reversed(feats[:-1])):
            x = block(torch.cat([resize(x, skip.shape[-2:], self.upsample), skip], dim=1))
        x = self.final(resize(x, image.shape[-2:], self.upsample))
        return self.head(x)
