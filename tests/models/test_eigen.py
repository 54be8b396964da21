"""Eigen, Puhrsch & Fergus 2014: resolutions of the two stacks, training stages, coarse weights."""

from __future__ import annotations

import pytest
import torch

from depthlab.errors import ConfigError
from depthlab.models.eigen import NYU_INPUT_SIZE, Eigen2014, fine_output_size

SMALL = dict(fc_width=64)  # the paper's 4096 units change nothing below but cost seconds


def test_paper_nyu_sizes_and_relative_resolutions() -> None:
    """Input 304x228 -> coarse and fine outputs both 74x55, a quarter of the input; contract at input size."""
    assert NYU_INPUT_SIZE == (228, 304)
    assert fine_output_size(NYU_INPUT_SIZE) == (55, 74)
    net = Eigen2014(**SMALL).eval()
    image = torch.rand(1, 3, 228, 304)
    with torch.no_grad():
        stages = net.forward_stages(image)
        depth = net(image).depth
    assert stages["coarse"].depth.shape == stages["fine"].depth.shape == (1, 1, 55, 74)
    assert 4.0 <= 228 / 55 < 4.2 and 4.0 <= 304 / 74 < 4.2
    assert depth.shape == (1, 1, 228, 304)


def test_configurable_sizes_and_any_image_size() -> None:
    net = Eigen2014(input_size=(172, 576), output_size=(27, 142), **SMALL).eval()  # a KITTI-like setting
    image = torch.rand(2, 3, 50, 70)
    with torch.no_grad():
        stages = net.forward_stages(image)
        depth = net(image).depth
    assert stages["coarse"].depth.shape[-2:] == stages["fine"].depth.shape[-2:] == (27, 142)
    assert depth.shape == (2, 1, 50, 70)


def test_coarse_stack_is_global() -> None:
    """Every coarse output pixel depends on every input region (FC layers); fine ones do not."""
    net = Eigen2014(input_size=(64, 96), **SMALL).eval()
    image = torch.rand(1, 3, 64, 96, requires_grad=True)
    stages = net.forward_stages(image)
    grad_coarse, = torch.autograd.grad(stages["coarse"].depth[0, 0, 0, 0], image, retain_graph=True)
    assert (grad_coarse[0].abs().sum(0)[-16:, -16:] > 0).any()  # top-left output sees the bottom-right corner
    local = net.fine.fine1(image)
    fine_only = net.fine.fine3(net.fine.fine2(torch.cat([local, torch.zeros_like(local[:, :1])], 1)))
    grad_fine, = torch.autograd.grad(fine_only[0, 0, 0, 0], image)
    assert grad_fine[0, :, -16:, -16:].abs().sum() == 0  # the local stack's receptive field is local


def test_stage_coarse_returns_coarse_and_freezes_fine() -> None:
    net = Eigen2014(stage="coarse", **SMALL).train()
    image = torch.rand(2, 3, 64, 96)
    depth = net(image).depth
    assert depth.shape == (2, 1, 64, 96) and "fine" not in net.forward_stages(image)
    depth.mean().backward()
    assert all(p.grad is None and not p.requires_grad for p in net.fine.parameters())
    assert all(p.grad is not None for p in net.coarse.parameters())


def test_coarse_then_fine_as_in_the_paper(tmp_path) -> None:
    torch.manual_seed(0)
    coarse_net = Eigen2014(stage="coarse", **SMALL)
    # a Lightning checkpoint stores the network under "net." inside "state_dict"
    checkpoint = tmp_path / "coarse.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in coarse_net.state_dict().items()}}, checkpoint)
    torch.manual_seed(1)
    fine_net = Eigen2014(stage="fine", coarse_weights=str(checkpoint), **SMALL).train()
    for key, value in coarse_net.coarse.state_dict().items():
        torch.testing.assert_close(fine_net.coarse.state_dict()[key], value, rtol=0, atol=0)
    assert not fine_net.coarse.training  # dropout of the frozen stack stays off
    assert all(not p.requires_grad for p in fine_net.coarse.parameters())
    fine_net(torch.rand(2, 3, 64, 96)).depth.mean().backward()
    assert all(p.grad is None for p in fine_net.coarse.parameters())
    assert all(p.grad is not None for p in fine_net.fine.parameters())


def test_fine_stage_without_coarse_weights_warns() -> None:
    with pytest.warns(UserWarning, match="coarse_weights"):
        Eigen2014(stage="fine", **SMALL)


def test_wrong_coarse_weights_and_bad_arguments(tmp_path) -> None:
    other = tmp_path / "other.pt"
    torch.save(Eigen2014(fc_width=32).state_dict(), other)
    with pytest.raises(ConfigError, match="coarse_weights.*fc_width"):
        Eigen2014(coarse_weights=str(other), **SMALL)
    with pytest.raises(ConfigError, match="stage"):
        Eigen2014(stage="both", **SMALL)
    with pytest.raises(ConfigError, match="coarse_encoder"):
        Eigen2014(pretrained=True, **SMALL)


def test_timm_coarse_backbone() -> None:
    net = Eigen2014(coarse_encoder="resnet18", **SMALL)
    image = torch.rand(2, 3, 50, 70)
    depth = net(image).depth
    assert depth.shape == (2, 1, 50, 70) and depth.min() > 0
    depth.mean().backward()
    assert net.coarse.layers.backbone.model.conv1.weight.grad is not None
    # both stacks see the image normalised with the backbone's statistics, set up once
    assert net.normalize is net.coarse.layers.backbone.normalize


def test_original_coarse_layers_normalise_with_imagenet_statistics() -> None:
    net = Eigen2014(**SMALL)
    torch.testing.assert_close(net.normalize.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    torch.testing.assert_close(net.normalize.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    assert not any("normalize" in key for key in net.state_dict())  # follows from the config, not saved


def test_old_timm_coarse_checkpoint_keys_still_load(tmp_path) -> None:
    """coarse_weights saved before the Encoder wrapper (``coarse.layers.backbone.<timm key>``) still load."""
    torch.manual_seed(0)
    coarse_net = Eigen2014(stage="coarse", coarse_encoder="resnet18", **SMALL)
    old = {k.replace("backbone.model.", "backbone.", 1): v for k, v in coarse_net.state_dict().items()}
    assert "coarse.layers.backbone.conv1.weight" in old
    checkpoint = tmp_path / "coarse.pt"
    torch.save(old, checkpoint)
    fine_net = Eigen2014(stage="fine", coarse_encoder="resnet18", coarse_weights=str(checkpoint), **SMALL)
    for key, value in coarse_net.coarse.state_dict().items():
        torch.testing.assert_close(fine_net.coarse.state_dict()[key], value, rtol=0, atol=0)
