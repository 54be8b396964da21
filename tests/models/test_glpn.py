"""GLPN-style network: the selective feature fusion block and encoder choice."""

from __future__ import annotations

import pytest
import torch

from depthlab.models.glpn import GLPN, SelectiveFeatureFusion


def test_sff_attention_maps_are_sigmoids_weighting_local_and_global() -> None:
    torch.manual_seed(0)
    block = SelectiveFeatureFusion(16).eval()
    local, global_ = torch.randn(2, 16, 12, 17), torch.randn(2, 16, 12, 17)
    with torch.no_grad():
        att = block.attention(local, global_)
        out = block(local, global_)
    assert att.shape == (2, 2, 12, 17)
    assert att.min() >= 0 and att.max() <= 1
    assert att.std() > 0  # per pixel, not one constant weight
    # documented weighting: channel 0 multiplies the local (skip) feature, channel 1 the global one
    torch.testing.assert_close(out, local * att[:, 0:1] + global_ * att[:, 1:2])


@pytest.mark.parametrize("bias, picks", [((20.0, -20.0), "local"), ((-20.0, 20.0), "global")])
def test_sff_selects_by_its_attention(bias, picks) -> None:
    block = SelectiveFeatureFusion(8).eval()
    last = block.body[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(bias))
        local, global_ = torch.randn(1, 8, 5, 6), torch.randn(1, 8, 5, 6)
        out = block(local, global_)
    torch.testing.assert_close(out, local if picks == "local" else global_, atol=1e-6, rtol=0)


@pytest.mark.parametrize("encoder, upsample_steps", [("convnext_atto", 1), ("resnet18", 0)])
def test_other_encoders(encoder: str, upsample_steps: int) -> None:
    """x2 steps from the shallowest map's stride: 4 (convnext) -> 2 -> input size; 2 (resnet) -> input size."""
    net = GLPN(encoder=encoder, decoder_channels=32)
    depth = net(torch.rand(1, 3, 50, 70)).depth
    assert depth.shape == (1, 1, 50, 70) and depth.min() > 0
    assert len(net.fusions) == len(net.encoder.channels) - 1
    assert net.upsample_steps == upsample_steps


def test_head_is_sigmoid_scaled_by_max_depth() -> None:
    net = GLPN(min_depth=1e-3, max_depth=80.0).eval()
    with torch.no_grad():
        net.last[-1].weight.zero_()
        net.last[-1].bias.fill_(0.0)  # sigmoid(0) = 0.5
        depth = net(torch.rand(1, 3, 64, 96)).depth
    torch.testing.assert_close(depth, torch.full_like(depth, 1e-3 + (80.0 - 1e-3) * 0.5))
