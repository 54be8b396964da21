"""Monodepth2's separate pose network: a ResNet on stacked frames and a small convolutional decoder.

Godard et al. 2019, "Digging into self-supervised monocular depth estimation" (nianticlabs/monodepth2,
``networks/resnet_encoder.py``, ``networks/pose_decoder.py``, ``trainer.py``, ``pose_model_type``
``separate_resnet``, the default):

- Encoder: a ResNet whose first convolution takes ``3 * num_frames`` channels, the frames stacked
  on the channel axis in temporal order. Pretrained, its ImageNet first-layer weights are repeated
  once per frame and divided by ``num_frames`` (``resnet_multiimage_input``), so a stack of
  identical frames gives the pretrained first layer's response to one frame.
- Decoder on the deepest feature map: 1x1 conv to 256 + ReLU, 3x3 conv 256 + ReLU, 3x3 conv 256 +
  ReLU, 1x1 conv to ``6 * (num_frames - 1)``, mean over H and W, times 0.01; per frame pair the
  first 3 values are an axis-angle rotation, the last 3 a translation.
"""

from __future__ import annotations

from typing import Sequence

import timm
import torch
from torch import Tensor, nn

from depthlab.errors import ConfigError
from depthlab.geometry import pose_from_parameters
from depthlab.models.encoders import (
    Normalize,
    _unknown_encoder,
    create_encoder,
    encoder_mean_std,
    resolve_pretrained,
)

WHERE = "model.pose_net"
POSE_SCALE = 0.01  # Monodepth2 PoseDecoder: the mean of the last conv's output is scaled by 0.01


def adapt_first_layer(weight: Tensor, num_frames: int) -> Tensor:
    """ImageNet first-layer weights (O, 3, kH, kW) for ``num_frames`` stacked RGB frames.

    Monodepth2's ``resnet_multiimage_input``: ``cat([w] * num_frames, dim=1) / num_frames``. timm's
    own ``in_chans`` adaptation (``adapt_input_conv``, applied only when timm itself loads hub
    weights) multiplies the repeated weights by ``3 / in_chans`` instead: the same value up to
    rounding (bit-identical for 2 and 4 frames, not for 3); this is Monodepth2's form.
    """
    return torch.cat([weight] * num_frames, dim=1) / num_frames


def _renamed(exc: ConfigError) -> ConfigError:
    """depthlab's encoder errors name ``model.net.*``; here the setting is ``model.pose_net.*``."""
    return ConfigError(str(exc).replace("model.net.", f"{WHERE}.", 1))


class PoseNet(nn.Module):
    """Monodepth2's separate pose network (ResNet on stacked frames, 0.01-scaled axis-angle + translation).

    ``net(frames)``: ``frames`` a list of ``num_frames`` images (B, 3, H, W), RGB in [0, 1], in
    temporal order -> ``(axis_angle, translation)``, each (B, num_frames - 1, 3), radians and
    depth units. Each frame is normalised with the encoder's pretrained mean/std (timm's config;
    ImageNet's for the ResNets), as depthlab's depth networks normalise theirs; Monodepth2
    normalises with ``(x - 0.45) / 0.225`` on every channel instead, which a network trained from
    ImageNet weights absorbs in its first layer (not bit-compatible with its released weights).

    The monocular pairing (Monodepth2 ``predict_poses`` with two frames): for source frame +1 the
    network sees ``[frame 0, frame +1]`` and its motion is used as is; for source frame -1 it sees
    ``[frame -1, frame 0]`` and the motion is inverted. :meth:`pose` returns that 4x4 matrix, the
    ``pose`` of :func:`depthlab.geometry.warp_with_pose` (target-camera points -> source camera).

    Args:
        encoder: a timm model name that supports ``features_only`` and ``in_chans``.
        pretrained: False, True (timm hub weights) or a local timm weight file (as the depth
            networks' ``pretrained``); the 3-channel weights are loaded strictly, then the first
            layer is adapted by :func:`adapt_first_layer`.
        num_frames: frames stacked at the input (2 in Monodepth2's default).
        channels: width of the decoder (256 in Monodepth2).

    The last convolution predicts ``6 * (num_frames - 1)`` values. Monodepth2's ``separate_resnet``
    builds its decoder with ``num_frames_to_predict_for=2`` (12 outputs for a pair) and uses only
    the first 6; the other 6 receive no gradient, so the trained motion is the same.
    """

    def __init__(
        self,
        encoder: str = "resnet18",
        pretrained: bool | str = False,
        num_frames: int = 2,
        channels: int = 256,
    ) -> None:
        super().__init__()
        if not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames < 2:
            raise ConfigError(f"{WHERE}.num_frames: expected an integer >= 2 (frames stacked at the input), "
                              f"got {num_frames!r}")
        self.encoder_name = encoder
        self.num_frames = num_frames
        self.encoder = self._create_encoder(encoder, pretrained, num_frames)
        self.normalize = Normalize(*encoder_mean_std(self.encoder))
        deepest = self.encoder.feature_info.channels()[-1]
        self.squeeze = nn.Conv2d(deepest, channels, 1)
        self.pose_convs = nn.ModuleList([
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.Conv2d(channels, 6 * (num_frames - 1), 1),
        ])
        self.relu = nn.ReLU()

    @staticmethod
    def _create_encoder(name: str, pretrained: bool | str, num_frames: int) -> nn.Module:
        in_chans = 3 * num_frames
        if not timm.is_model(name):
            raise _renamed(_unknown_encoder(name))
        try:
            # The 3-channel encoder, through depthlab's one place for weights (hub cache, offline
            # message, strict local files); none at all when no weights are wanted.
            rgb = create_encoder(name, pretrained) if resolve_pretrained(pretrained) is not False else None
        except ConfigError as exc:
            raise _renamed(exc) from exc
        try:
            stacked = timm.create_model(name, pretrained=False, features_only=True, in_chans=in_chans)
        except TypeError as exc:
            raise ConfigError(f"{WHERE}.encoder: timm cannot build {name!r} with in_chans={in_chans}: {exc}") from None
        if rgb is None:
            return stacked
        state = rgb.state_dict()
        target = stacked.state_dict()
        adapted = [key for key, value in target.items() if value.shape != state[key].shape]
        for key in adapted:  # the first layer, the only tensor that sees the input channels
            weight = state[key]
            if weight.ndim != 4 or weight.shape[1] != 3 or target[key].shape[1] != in_chans:
                raise ConfigError(f"{WHERE}.encoder: cannot adapt {name!r}'s {key} {tuple(weight.shape)} to "
                                  f"{in_chans} input channels (expected a first convolution on RGB)")
            state[key] = adapt_first_layer(weight, num_frames)
        if len(adapted) != 1:
            raise ConfigError(f"{WHERE}.encoder: expected one first-layer tensor to adapt in {name!r}, "
                              f"found {adapted or 'none'}")
        stacked.load_state_dict(state, strict=True)
        return stacked

    def forward(self, frames: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """``num_frames`` images (B, 3, H, W) in [0, 1], temporal order -> (axis_angle, translation),
        each (B, num_frames - 1, 3)."""
        if len(frames) != self.num_frames:
            raise ValueError(f"PoseNet: expected {self.num_frames} frames (num_frames), got {len(frames)}")
        x = torch.cat([self.normalize(frame) for frame in frames], dim=1)
        out = self.relu(self.squeeze(self.encoder(x)[-1]))
        out = self.relu(self.pose_convs[0](out))
        out = self.relu(self.pose_convs[1](out))
        out = self.pose_convs[2](out)
        out = POSE_SCALE * out.mean(dim=(2, 3)).view(-1, self.num_frames - 1, 6)
        return out[..., :3], out[..., 3:]

    def pose(self, frame_a: Tensor, frame_b: Tensor, invert: bool = False) -> Tensor:
        """(B, 4, 4) motion of the pair ``[frame_a, frame_b]`` (temporal order), inverted if asked.

        Monodepth2: target frame 0, source +1 -> ``pose(frame_0, frame_plus_1)``; source -1 ->
        ``pose(frame_minus_1, frame_0, invert=True)``. Only for ``num_frames == 2``.
        """
        if self.num_frames != 2:
            raise ValueError(f"PoseNet.pose: takes a pair of frames; this network stacks {self.num_frames}")
        axis_angle, translation = self([frame_a, frame_b])
        return pose_from_parameters(axis_angle[:, 0], translation[:, 0], invert=invert)

    def extra_repr(self) -> str:
        return f"encoder={self.encoder_name!r}, num_frames={self.num_frames}"
