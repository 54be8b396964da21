"""Monodepth2's pose network: output layout and 0.01 scale by hand, the first-layer adaptation of
pretrained weights exactly as Monodepth2 does it, and the ``depthlab.pose_models`` registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from depthlab import pose
from depthlab.errors import ConfigError
from depthlab.geometry import pose_from_parameters
from depthlab.pose.monodepth2 import PoseNet, adapt_first_layer

REPO = Path(__file__).resolve().parents[2]
CLASS_PATH = "depthlab.pose.monodepth2.PoseNet"


def _frames(n: int, batch: int = 2, size: tuple[int, int] = (32, 64), seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(batch, 3, *size, generator=g) for _ in range(n)]


@pytest.mark.parametrize("num_frames", [2, 3])
def test_output_is_the_mean_of_the_last_conv_times_0_01_split_per_frame(num_frames):
    torch.manual_seed(0)
    net = PoseNet(num_frames=num_frames, channels=32).eval()
    captured = {}
    net.pose_convs[-1].register_forward_hook(lambda module, args, out: captured.update(out=out))
    with torch.no_grad():
        axis_angle, translation = net(_frames(num_frames))
    assert axis_angle.shape == translation.shape == (2, num_frames - 1, 3)
    assert captured["out"].shape[1] == 6 * (num_frames - 1)
    by_hand = 0.01 * captured["out"].mean(dim=(2, 3)).view(2, num_frames - 1, 6)
    assert torch.equal(axis_angle, by_hand[..., :3]) and torch.equal(translation, by_hand[..., 3:])


def test_a_constant_last_layer_gives_exactly_its_bias_times_0_01():
    net = PoseNet(channels=16).eval()
    last = net.pose_convs[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([1.0, -2.0, 4.0, 8.0, -16.0, 0.5]))
        axis_angle, translation = net(_frames(2))
    assert torch.equal(axis_angle, torch.tensor([0.01, -0.02, 0.04]).expand(2, 1, 3))
    assert torch.equal(translation, torch.tensor([0.08, -0.16, 0.005]).expand(2, 1, 3))
    # pose(): the pair's motion as a 4x4, inverted for the frame before the target.
    frames = _frames(2)
    with torch.no_grad():
        forward, backward = net.pose(*frames), net.pose(*frames, invert=True)
    assert torch.equal(forward, pose_from_parameters(axis_angle[:, 0], translation[:, 0]))
    assert torch.allclose(forward @ backward, torch.eye(4).expand(2, 4, 4), atol=1e-6)


def test_frames_are_stacked_in_order_each_normalised_with_the_encoder_mean_std():
    net = PoseNet(channels=8).eval()
    seen = {}
    net.encoder.register_forward_pre_hook(lambda module, args: seen.update(x=args[0]))
    first, second = _frames(2, batch=1)
    with torch.no_grad():
        net([first, second])
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # timm's resnet18 config: ImageNet's
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(seen["x"], torch.cat([(first - mean) / std, (second - mean) / std], 1))
    with pytest.raises(ValueError, match="expected 2 frames"):
        net([first])


@pytest.mark.parametrize("num_frames", [2, 3])
def test_pretrained_first_layer_is_repeated_per_frame_and_divided_by_their_number(tmp_path, num_frames):
    torch.manual_seed(7)
    reference = timm.create_model("resnet18").state_dict()  # the whole timm model, classifier included
    path = tmp_path / "resnet18.pth"
    torch.save(reference, path)
    torch.manual_seed(0)  # another random init: a silent non-load would show
    net = PoseNet(pretrained=str(path), num_frames=num_frames, channels=8)
    conv1 = net.encoder.conv1.weight
    w = reference["conv1.weight"]
    assert conv1.shape == (64, 3 * num_frames, 7, 7)
    assert torch.equal(conv1, torch.cat([w] * num_frames, 1) / num_frames)
    assert torch.equal(adapt_first_layer(w, num_frames), conv1)
    for key in ("layer1.0.conv1.weight", "layer4.1.bn2.running_var", "bn1.bias"):
        assert torch.equal(net.encoder.state_dict()[key], reference[key])
    # A stack of identical frames meets the pretrained first layer as one frame would.
    x = torch.rand(1, 3, 16, 16)
    single = torch.nn.functional.conv2d(x, w, stride=2, padding=3)
    stacked = torch.nn.functional.conv2d(torch.cat([x] * num_frames, 1), conv1, stride=2, padding=3)
    assert torch.allclose(stacked, single, atol=1e-5)


def test_bad_settings_name_the_pose_net_key(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.pose_net\.pretrained: weight file"):
        PoseNet(pretrained=str(tmp_path / "missing.pth"))
    with pytest.raises(ConfigError, match=r"model\.pose_net\.encoder: .*'resnet19'"):
        PoseNet(encoder="resnet19")
    with pytest.raises(ConfigError, match=r"model\.pose_net\.num_frames"):
        PoseNet(num_frames=1)
    wrong = tmp_path / "convnext.pth"
    torch.save(timm.create_model("convnext_atto").state_dict(), wrong)
    with pytest.raises(ConfigError, match=r"model\.pose_net\.pretrained: .* does not fit"):
        PoseNet(pretrained=str(wrong))


# -- registry -----------------------------------------------------------------------------------------
def test_build_through_class_path_fills_defaults():
    net = pose.build({"class_path": CLASS_PATH, "init_args": {"channels": 8}}, num_frames=3)
    assert isinstance(net, PoseNet) and net.num_frames == 3 and net.squeeze.out_channels == 8


def test_unknown_name_and_wrong_argument_are_config_errors_naming_model_pose_net():
    with pytest.raises(ConfigError, match=r"^model\.pose_net: unknown pose model 'posenet_x'"):
        pose.build("posenet_x")
    with pytest.raises(ConfigError, match=r"^model\.pose_net: .*unexpected keyword argument 'frames'"):
        pose.build({"class_path": CLASS_PATH, "init_args": {"frames": 2}})


def test_pyproject_registers_monodepth2_under_the_pose_group():
    # Entry points are read from installed metadata; this checks the declaration itself, which an
    # installed depthlab turns into REGISTRY.get("monodepth2").
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    value = project["project"]["entry-points"][pose.REGISTRY.group]["monodepth2"]
    module, _, attr = value.partition(":")
    assert f"{module}.{attr}" == CLASS_PATH
    if "monodepth2" in pose.available():  # an install that has the entry point
        assert pose.REGISTRY.get("monodepth2") is PoseNet
