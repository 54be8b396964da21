"""A global-local path network in the manner of GLPN (Kim et al., 2022), on any timm encoder.

Written from the paper's description ("Global-Local Path Networks for Monocular Depth Estimation
with Vertical CutDepth"): a hierarchical encoder gives the global path; a light decoder restores
resolution step by step and, at every skip, a selective feature fusion (SFF) block mixes the
encoder's local features with the decoder's global ones through two per-pixel attention maps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from depthlab.models.encoders import Encoder
from depthlab.models.heads import DepthHead, Output
from depthlab.models.layers import ConvNormReLU, Norm, resize
from depthlab.models.output import DepthOutput


class SelectiveFeatureFusion(nn.Module):
    """GLPN's SFF block: ``out = a_local * local + a_global * global_``.

    ``local`` (encoder skip) and ``global_`` (decoder) are (B, C, H, W). Their concatenation goes
    through two 3x3 conv-norm-ReLU layers and a 3x3 convolution to two channels; a sigmoid makes
    them the attention maps ``a_local = A[:, 0:1]`` and ``a_global = A[:, 1:2]``, each in [0, 1]
    and chosen independently per pixel (they need not sum to 1).
    """

    def __init__(self, channels: int, norm: Norm = "batch") -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormReLU(2 * channels, channels, norm),
            ConvNormReLU(channels, channels // 2, norm),
            nn.Conv2d(channels // 2, 2, 3, padding=1),
        )

    def attention(self, local: Tensor, global_: Tensor) -> Tensor:
        """(B, 2, H, W) in [0, 1]: channel 0 weights ``local``, channel 1 weights ``global_``."""
        return torch.sigmoid(self.body(torch.cat([local, global_], dim=1)))

    def forward(self, local: Tensor, global_: Tensor) -> Tensor:
        att = self.attention(local, global_)
        return local * att[:, 0:1] + global_ * att[:, 1:2]


class GLPN(nn.Module):
    """GLPN-style global-local path network: timm encoder, SFF decoder, sigmoid head scaled by max_depth.

    Encoder: any timm ``features_only`` model; its feature maps (e.g. strides 4, 8, 16, 32 for
    pvt_v2 / convnext / swin) are the global path and the skips. Decoder: the deepest map is
    reduced to ``decoder_channels`` by a 1x1 convolution; then, for each shallower skip (also
    reduced to ``decoder_channels`` by a 1x1 convolution), the decoder feature is upsampled
    bilinearly to the skip's size and fused with it by a :class:`SelectiveFeatureFusion` block.
    The fused feature, at the stride r of the shallowest map (4 for pvt_v2, 2 for resnet), is
    upsampled x2 ``ceil(log2 r) - 1`` times (once from stride 4, as GLPN) and then resized to
    exactly the input size (so sizes not divisible by 32 work); the head (3x3 conv, ReLU, 3x3 conv)
    produces the logits; ``DepthHead`` maps them to ``min_depth + (max_depth - min_depth) *
    sigmoid``, which is GLPN's ``max_depth * sigmoid`` up to the ``min_depth`` floor.

    Args:
        encoder: timm model name. The default ``pvt_v2_b0`` (3.4 M parameters) suits a CPU;
            ``pvt_v2_b4`` is about the size of the MiT-b4 encoder of the paper.
        pretrained: False, True (timm hub weights) or a local weight file path.
        decoder_channels: width C of the decoder and of every SFF block (GLPN: 64).
        norm: normalisation in the SFF blocks: ``batch``, ``group`` or ``none``.
        min_depth, max_depth: output range in metres.
        output: ``depth`` (the head predicts metres) or ``inverse_depth`` (it predicts 1/m;
            ``depth`` is still returned, in metres).
        uncertainty: add a ``log_variance`` output (see DepthHead).
    """

    def __init__(
        self,
        encoder: str = "pvt_v2_b0",
        pretrained: bool | str = False,
        decoder_channels: int = 64,
        norm: Norm = "batch",
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        output: Output = "depth",
        uncertainty: bool = False,
    ) -> None:
        super().__init__()
        self.head = DepthHead(min_depth, max_depth, output, uncertainty)
        self.encoder = Encoder(encoder, pretrained)
        channels = self.encoder.channels  # shallow -> deep
        # A fixed number of x2 steps, from the encoder's nominal stride: a loop on the feature's
        # actual size would be a Python branch on the input shape, which torch.export cannot
        # keep dynamic. (r - 1).bit_length() is ceil(log2 r) for integers r >= 1.
        self.upsample_steps = max((self.encoder.reductions[0] - 1).bit_length() - 1, 0)
        c = decoder_channels
        self.bottleneck = nn.Conv2d(channels[-1], c, 1)
        # Skips deepest-first; the stride-2 map of CNN encoders (resnet's first stage) is used too.
        self.skip_proj = nn.ModuleList(
            nn.Conv2d(ch, c, 1) if ch != c else nn.Identity() for ch in reversed(channels[:-1])
        )
        self.fusions = nn.ModuleList(SelectiveFeatureFusion(c, norm) for _ in channels[:-1])
        self.last = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, self.head.out_channels, 3, padding=1)
        )

    def forward(self, image: Tensor) -> DepthOutput:
        """(B, 3, H, W) RGB in [0, 1] -> DepthOutput at (H, W), see DepthHead."""
        feats = self.encoder(image)
        x = self.bottleneck(feats[-1])
        for proj, fuse, skip in zip(self.skip_proj, self.fusions, reversed(feats[:-1])):
            x = fuse(proj(skip), resize(x, skip.shape[-2:]))
        for _ in range(self.upsample_steps):  # progressive x2 upsampling, as GLPN's decoder
            x = resize(x, (x.shape[-2] * 2, x.shape[-1] * 2))
        return self.head(self.last(resize(x, image.shape[-2:])))
