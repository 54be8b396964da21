"""U-Net options: decoder width, normalisation and upsampling mode."""

from __future__ import annotations

import pytest
import torch

from depthlab.errors import ConfigError
from depthlab.models.unet import UNet


@pytest.mark.parametrize("norm, upsample", [("batch", "nearest"), ("group", "bilinear"), ("none", "nearest")])
def test_options(norm: str, upsample: str) -> None:
    net = UNet(decoder_channels=(32, 16), norm=norm, upsample=upsample)
    depth = net(torch.rand(1, 3, 50, 70))
    assert depth.shape == (1, 1, 50, 70) and depth.min() > 0
    norms = {type(m).__name__ for m in net.decoder.modules()}
    assert {"batch": "BatchNorm2d", "group": "GroupNorm", "none": "Identity"}[norm] in norms


def test_decoder_width() -> None:
    net = UNet(decoder_channels=(40, 24))
    widths = [block[0].out_channels for block in net.decoder]
    assert widths == [40, 24, 24, 24]  # missing entries repeat the last width


def test_synthetic_config_arguments_and_state_dict_keys() -> None:
    """configs/synthetic.yaml's arguments keep working, and the decoder's keys are the flat ones."""
    net = UNet(encoder="resnet18", pretrained=False, decoder_channels=[128, 64, 32, 16])
    keys = net.state_dict().keys()
    assert "decoder.0.0.weight" in keys and "decoder.0.3.weight" in keys and "final.1.weight" in keys


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="upsample"):
        UNet(upsample="bicubic")
    with pytest.raises(ConfigError, match="norm"):
        UNet(norm="layer")
    with pytest.raises(ConfigError, match="Did you mean"):
        UNet(encoder="resnet19")
