"""U-Net options: decoder width, normalisation, upsampling mode and multi-scale output."""

from __future__ import annotations

import pytest
import torch

from depthlab.errors import ConfigError
from depthlab.models.output import DepthOutput
from depthlab.models.unet import UNet

SMALL = dict(decoder_channels=(32, 16, 16, 8))


@pytest.mark.parametrize("norm, upsample", [("batch", "nearest"), ("group", "bilinear"), ("none", "nearest")])
def test_options(norm: str, upsample: str) -> None:
    net = UNet(decoder_channels=(32, 16), norm=norm, upsample=upsample)
    depth = net(torch.rand(1, 3, 50, 70)).depth
    assert depth.shape == (1, 1, 50, 70) and depth.min() > 0
    norms = {type(m).__name__ for m in net.decoder.modules()}
    assert {"batch": "BatchNorm2d", "group": "GroupNorm", "none": "Identity"}[norm] in norms


def test_decoder_width() -> None:
    net = UNet(decoder_channels=(40, 24))
    widths = [block[0].out_channels for block in net.decoder]
    assert widths == [40, 24, 24, 24]  # missing entries repeat the last width
    assert net.final[0][0].out_channels == 12  # the full-resolution block: half the last width
    net = UNet(decoder_channels=(40, 24, 16, 8, 4, 2))
    assert [block[0].out_channels for block in net.decoder] == [40, 24, 16, 8]  # extra entries are ignored
    assert net.final[0][0].out_channels == 8  # half of 8, but at least 8


def test_synthetic_config_arguments_and_state_dict_keys() -> None:
    """configs/synthetic.yaml's arguments keep working, and the decoder's keys are the flat ones."""
    net = UNet(encoder="resnet18", pretrained=False, decoder_channels=[128, 64, 32, 16])
    keys = net.state_dict().keys()
    assert "decoder.0.0.weight" in keys and "decoder.0.3.weight" in keys and "final.1.weight" in keys


def test_bad_options() -> None:
    for num_scales in (0, 6, 2.0, True):  # resnet18 has 5 feature maps: at most 5 scales
        with pytest.raises(ConfigError, match="num_scales"):
            UNet(num_scales=num_scales, **SMALL)
    with pytest.raises(ConfigError, match="upsample"):
        UNet(upsample="bicubic")
    with pytest.raises(ConfigError, match="norm"):
        UNet(norm="layer")
    with pytest.raises(ConfigError, match="Did you mean"):
        UNet(encoder="resnet19")


@pytest.mark.parametrize("size", [(64, 96), (50, 70)])
def test_multi_scale_outputs_at_decoder_resolutions(size) -> None:
    """num_scales=4 on resnet18: the full-resolution map plus the decoder's stride-2, 4 and 8 maps."""
    torch.manual_seed(0)
    net = UNet(num_scales=4, output="inverse_depth", min_depth=0.1, max_depth=80.0, **SMALL).eval()
    image = torch.rand(2, 3, *size)
    with torch.no_grad():
        out = net(image)
        skips = [f.shape[-2:] for f in net.encoder(image)[:3]]  # strides 2, 4, 8: finest first
    assert out.depth.shape == (2, 1, *size)
    assert [s.depth.shape[-2:] for s in out.scales] == skips
    assert all(not s.scales for s in out.scales)
    for scale in out.scales:  # same head: the units contract holds at every scale
        assert scale.available() == {"depth", "inverse_depth"}
        assert scale.depth.min() >= 0.1 and scale.depth.max() <= 80.0
        torch.testing.assert_close(scale.depth, 1 / scale.inverse_depth)


def test_multi_scale_heads_learn_and_single_scale_keys_are_unchanged() -> None:
    single = UNet(**SMALL)
    multi = UNet(num_scales=3, **SMALL)
    keys = set(single.state_dict())
    assert not any(k.startswith("scale_heads") for k in keys)
    # the single-scale network's keys are the encoder's, the decoder's and the final block's only
    assert {k.split(".")[0] for k in keys} == {"encoder", "decoder", "final"}
    assert set(multi.state_dict()) - keys == {f"scale_heads.{i}.{p}" for i in range(2) for p in ("weight", "bias")}
    # a single-scale checkpoint initialises the multi-scale network: same full-resolution output
    result = multi.load_state_dict(single.state_dict(), strict=False)
    assert set(result.missing_keys) == set(multi.state_dict()) - keys and not result.unexpected_keys
    image = torch.rand(1, 3, 50, 70)
    single.eval(), multi.eval()
    torch.testing.assert_close(multi(image).depth, single(image).depth, rtol=0, atol=0)
    multi.train()
    sum(s.depth.log().mean() for s in multi(image).scales).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in multi.scale_heads.parameters())


def test_old_checkpoint_keys_still_load() -> None:
    """Checkpoints from before the Encoder wrapper held the timm tensors at ``encoder.<key>``."""
    trained = UNet(**SMALL).eval()
    old = {k.replace("encoder.model.", "encoder.", 1): v for k, v in trained.state_dict().items()}
    assert "encoder.conv1.weight" in old
    torch.manual_seed(1)
    net = UNet(**SMALL).eval()
    net.load_state_dict(old, strict=True)
    image = torch.rand(1, 3, 50, 70)
    torch.testing.assert_close(net(image).depth, trained(image).depth, rtol=0, atol=0)
