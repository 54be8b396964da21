"""U-Net on any timm encoder (the default depthlab network)."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch
from torch import Tensor, nn

from depthlab.errors import ConfigError
from depthlab.models.encoders import Encoder
from depthlab.models.heads import DepthHead, Output
from depthlab.models.layers import ConvNormReLU, Norm, Upsample, check_upsample, resize
from depthlab.models.output import DepthOutput


class ConvBlock(nn.Sequential):
    """Two 3x3 conv-norm-ReLU layers (one flat Sequential: its state-dict keys are stable)."""

    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__(*ConvNormReLU(cin, cout, norm), *ConvNormReLU(cout, cout, norm))


class UNet(nn.Module):
    """U-Net: a timm features_only encoder, one conv block per skip, a bounded depth head.

    The encoder gives N feature maps; the decoder has one block per skip, N - 1 in all (4 for
    resnet18, whose maps have strides 2 to 32). Each block upsamples to its skip's exact size (so
    any input size works, divisible by 32 or not), concatenates the skip and applies two 3x3
    conv-norm-ReLU layers. The last block's output is upsampled to the input resolution, refined
    by one more block and mapped to a :class:`~depthlab.models.output.DepthOutput` by
    :class:`~depthlab.models.heads.DepthHead`.

    With ``num_scales`` k > 1, the last k - 1 decoder blocks also get a 3x3 convolution to the
    head's logits, mapped by the same head: ``out.scales`` holds these k - 1 coarser predictions,
    finest first, each at its block's resolution (strides 2, 4, 8 with resnet18 and k = 4: the
    four scales of Monodepth2's photometric loss, counting the full-resolution ``out`` itself).

    Args:
        encoder: any timm model name that supports ``features_only``.
        pretrained: False, True (timm hub weights) or a local weight file path.
        decoder_channels: width of each decoder block, deepest first. Only the first N - 1 entries
            are used (extra ones are ignored); if fewer are given, the last width is repeated for
            the remaining blocks (an empty list means 64). The final full-resolution block has half
            the last block's width (at least 8).
        norm: ``batch``, ``group`` or ``none``.
        upsample: ``nearest`` or ``bilinear``.
        min_depth, max_depth: output range in metres.
        output: ``depth`` (the head predicts metres) or ``inverse_depth`` (it predicts 1/m, in
            [1/max_depth, 1/min_depth]; ``depth`` is still returned, in metres).
        uncertainty: add a ``log_variance`` output (see DepthHead).
        num_scales: 1 (default) or up to N: predictions at this many resolutions (see above).
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
        num_scales: int = 1,
    ) -> None:
        super().__init__()
        self.upsample = check_upsample(upsample)
        self.head = DepthHead(min_depth, max_depth, output, uncertainty)
        self.encoder = Encoder(encoder, pretrained)
        channels = self.encoder.channels  # shallow -> deep
        if isinstance(num_scales, bool) or not isinstance(num_scales, int) or not 1 <= num_scales <= len(channels):
            raise ConfigError(
                f"model.net.num_scales: expected an integer from 1 to {len(channels)} (1 + the decoder blocks "
                f"of encoder {encoder!r}), got {num_scales!r}"
            )
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
        # Finest first, as DepthOutput.scales. Empty at num_scales=1: an empty ModuleList adds no
        # state-dict keys, so that network and its checkpoints are exactly the single-scale U-Net.
        finest_first = list(reversed(widths))[: num_scales - 1]
        self.scale_heads = nn.ModuleList(nn.Conv2d(w, self.head.out_channels, 3, padding=1) for w in finest_first)

    @property
    def num_scales(self) -> int:
        return 1 + len(self.scale_heads)

    def forward(self, image: Tensor) -> DepthOutput:
        """(B, 3, H, W) RGB in [0, 1] -> DepthOutput at (H, W), with ``num_scales - 1`` coarser ``scales``."""
        feats = self.encoder(image)
        x = feats[-1]
        decoded = []
        for block, skip in zip(self.decoder, reversed(feats[:-1])):
            x = block(torch.cat([resize(x, skip.shape[-2:], self.upsample), skip], dim=1))
            decoded.append(x)
        out = self.head(self.final(resize(x, image.shape[-2:], self.upsample)))
        scales = [self.head(conv(feature)) for conv, feature in zip(self.scale_heads, reversed(decoded))]
        return replace(out, scales=scales)
