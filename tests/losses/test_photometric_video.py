"""The one photometric loss with temporal sources (Monodepth2's M and MS): equal to Monodepth2's
``compute_losses`` restated (benchmarks/peer_monodepth2_loss.py runs the real code), its inputs
checked at start-up, and with the data's true poses and depth it explains the frames."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_geometry_pose import _monodepth2_warp

from depthlab.data import SyntheticDataModule
from depthlab.errors import ConfigError
from depthlab.geometry import SSIM_C1, SSIM_C2
from depthlab.losses import build_objective
from depthlab.losses.photometric import PhotometricLoss
from depthlab.models.output import DepthOutput
from depthlab.module import DepthModule


def _ssim(x, y):  # monodepth2 layers.SSIM: reflection pad 1, 3x3 means, clamp((1 - SSIM) / 2, 0, 1)
    x, y = F.pad(x, (1,) * 4, mode="reflect"), F.pad(y, (1,) * 4, mode="reflect")
    mx, my = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sx, sy = F.avg_pool2d(x * x, 3, 1) - mx**2, F.avg_pool2d(y * y, 3, 1) - my**2
    sxy = F.avg_pool2d(x * y, 3, 1) - mx * my
    n = (2 * mx * my + SSIM_C1) * (2 * sxy + SSIM_C2)
    d = (mx**2 + my**2 + SSIM_C1) * (sx + sy + SSIM_C2)
    return torch.clamp((1 - n / d) / 2, 0, 1)


def _reprojection(pred, target):
    return 0.85 * _ssim(pred, target).mean(1, True) + 0.15 * (target - pred).abs().mean(1, True)


def monodepth2_losses(target, sources, poses, disps, intrinsics, automask, lo=0.1, hi=100.0):
    """Monodepth2 trainer.py generate_images_pred + compute_losses (no smoothness, noise 0), restated:
    per scale the disparity upsampled to full size, depth from disp_to_depth, each source warped,
    the minimum over [identities, warps] per pixel, its mean; the scales averaged."""
    total = 0
    for disp in disps:
        disp = F.interpolate(disp, target.shape[-2:], mode="bilinear", align_corners=False)
        depth = 1 / (1 / hi + (1 / lo - 1 / hi) * disp)
        warped = [_reprojection(_monodepth2_warp(src, depth, intrinsics, pose), target) for src, pose in zip(sources, poses)]
        identity = [_reprojection(src, target) for src in sources] if automask else []
        total = total + torch.cat(identity + warped, 1).min(1)[0].mean()
    return total / len(disps)


def _case(seed, frame_ids, batch=2, height=48, width=96):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(batch, 3, height, width, generator=g)
    fx, fy, cx, cy = 0.58 * width, 1.92 * height, 0.5 * width, 0.5 * height
    intrinsics = torch.tensor([fx, fy, cx, cy]).expand(batch, 4)
    data = {"image": target, "intrinsics": intrinsics, "baseline_m": torch.full((batch,), 0.1)}
    sources, poses, by_frame = [], [], {}
    for k in frame_ids[1:]:
        source = (target.roll(3 if k == "s" else 2 * k, dims=-1) + 0.05 * torch.rand(target.shape, generator=g)).clamp(0, 1)
        if k == "s":
            pose = torch.eye(4).expand(batch, 4, 4).clone()
            pose[:, 0, 3] = -0.1  # the right camera seen from the left: x - baseline
            data["image_right"] = source
        else:
            from depthlab.geometry import pose_from_parameters

            pose = pose_from_parameters(0.02 * torch.randn(batch, 3, generator=g), 0.3 * torch.randn(batch, 3, generator=g),
                                        invert=k < 0)
            data[f"image_f{k:+d}"] = source
            by_frame[k] = pose
        sources.append(source)
        poses.append(pose)
    disps = [torch.rand(batch, 1, height // 2**s, width // 2**s, generator=g) * 0.5 + 0.1 for s in range(4)]

    def level(disp):
        inverse = 1 / 100.0 + (1 / 0.1 - 1 / 100.0) * disp
        return DepthOutput(1 / inverse, inverse_depth=inverse)

    out = DepthOutput(level(disps[0]).depth, level(disps[0]).inverse_depth, scales=[level(d) for d in disps[1:]],
                      poses=by_frame)
    return data, out, sources, poses, disps, intrinsics


@pytest.mark.parametrize("frame_ids", [[0, -1, 1], [0, -1, 1, "s"]], ids=["M", "MS"])
@pytest.mark.parametrize("automask", [True, False])
def test_equals_monodepth2_compute_losses(frame_ids, automask):
    data, out, sources, poses, disps, intrinsics = _case(0, frame_ids)
    theirs = monodepth2_losses(data["image"], sources, poses, disps, intrinsics, automask)
    loss = PhotometricLoss(automask=automask, automask_average="all", inside_mask=False, frame_ids=frame_ids)
    ours, stats = loss(out, data, torch.zeros_like(data["image"][:, :1], dtype=torch.bool))
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
    if automask:
        assert 0 < float(stats["automasked_fraction"]) < 1  # identities and warps both win somewhere


def test_the_inputs_of_video_training_are_checked_at_start_up_in_one_line():
    objective = build_objective({"name": "photometric", "frame_ids": [0, -1, 1]})
    assert {"image_f-1", "image_f+1", "intrinsics"} <= objective.requires and "image_right" not in objective.requires
    with pytest.raises(ConfigError, match=r"batch key 'image_f[+-]1'.*data.frame_ids: \[0, -1, 1\]"):
        objective.check_requirements(SyntheticDataModule(frame_ids=[0]).provides, None, "data module")
    objective.check_requirements(SyntheticDataModule(frame_ids=[0, -1, 1]).provides, None, "data module")
    with pytest.raises(ConfigError, match=r"network output 'poses'.*set model.pose_net"):
        objective.check_requirements(None, {"depth", "inverse_depth"}, "network UNet")
    with pytest.raises(ConfigError, match="name no source view"):
        PhotometricLoss(frame_ids=[0])
    with pytest.raises(ConfigError, match="mode hint warps the stereo view"):
        build_objective({"name": "depth_hints", "frame_ids": [0, -1, 1]})


def test_true_poses_and_depth_explain_the_rendered_frames():
    data = SyntheticDataModule(height=96, width=128, frame_ids=[0, -1, 1], train_size=2, val_size=2, test_size=2)
    sample = data.dataset("val")[0]
    batch = {key: value[None] for key, value in sample.items() if hasattr(value, "ndim")}
    loss = PhotometricLoss(frame_ids=[0, -1, 1], automask=False)
    mask = torch.zeros_like(batch["depth"], dtype=torch.bool)
    true = DepthOutput(batch["depth"].clamp_min(0.1), poses={k: batch[f"pose_f{k:+d}"] for k in (-1, 1)})
    still = DepthOutput(batch["depth"].clamp_min(0.1), poses={k: torch.eye(4)[None] for k in (-1, 1)})
    assert float(loss(true, batch, mask)[0]) < 0.5 * float(loss(still, batch, mask)[0])


def test_a_pose_network_learns_through_the_module():
    torch.manual_seed(0)
    module = DepthModule(net={"name": "unet", "encoder": "resnet18", "decoder_channels": [16, 8, 8, 8], "output": "inverse_depth"},
                         loss={"name": "photometric", "frame_ids": [0, -1, 1]}, pose_net={"name": "monodepth2"},
                         min_depth=0.1, max_depth=20.0, eval_protocol={"name": "none", "align": "median"})
    data = SyntheticDataModule(height=32, width=48, frame_ids=[0, -1, 1], train_size=2, batch_size=2, num_workers=0)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    total, _ = module.compute_loss(module(batch["image"]), batch)
    total.backward()
    grads = [p.grad for p in module.pose_net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    out = module.with_poses(module(batch["image"]), batch)
    assert set(out.poses) == {-1, 1} and out.poses[1].shape == (2, 4, 4)


def _scaled(out: DepthOutput, c: float) -> DepthOutput:
    return DepthOutput(out.depth * c, out.inverse_depth / c, poses=out.poses,
                       scales=[DepthOutput(s.depth * c, s.inverse_depth / c) for s in out.scales])


def test_mean_normalised_depth_makes_the_video_loss_blind_to_the_depths_scale():
    data, out, sources, poses, disps, intrinsics = _case(1, [0, -1, 1])
    mask = torch.zeros_like(data["image"][:, :1], dtype=torch.bool)
    plain = PhotometricLoss(frame_ids=[0, -1, 1], inside_mask=False, automask_average="all")
    normed = PhotometricLoss(frame_ids=[0, -1, 1], inside_mask=False, automask_average="all", depth_normalization="mean")
    # scaling the depth changes Monodepth2's loss, not the normalised one's
    assert float(plain(_scaled(out, 3.0), data, mask)[0]) != pytest.approx(float(plain(out, data, mask)[0]), rel=1e-3)
    assert float(normed(_scaled(out, 3.0), data, mask)[0]) == pytest.approx(float(normed(out, data, mask)[0]), rel=1e-5)
    # and it is Monodepth2's loss on each image's depth times the mean of its inverse (Wang et al. 2018)
    level = lambda d: d * (1 / d).mean((1, 2, 3), keepdim=True)  # noqa: E731
    rescaled = DepthOutput(level(out.depth), poses=out.poses, scales=[DepthOutput(level(s.depth)) for s in out.scales])
    assert float(normed(out, data, mask)[0]) == pytest.approx(float(plain(rescaled, data, mask)[0]), rel=1e-5)
    with pytest.raises(ConfigError, match=r"depth_normalization mean is for monocular video.*\[0, -1, 1, 's'\]"):
        PhotometricLoss(frame_ids=[0, -1, 1, "s"], depth_normalization="mean")
    with pytest.raises(ConfigError, match="depth_normalization must be one of none, mean, got 'median'"):
        PhotometricLoss(frame_ids=[0, -1, 1], depth_normalization="median")
