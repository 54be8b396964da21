"""Stereo photometric loss and Depth Hints' supervision modes, against error maps built by hand."""

import pytest
import torch

from depthlab import losses
from depthlab.data.synthetic import SceneConfig, render_sample
from depthlab.errors import ConfigError
from depthlab.geometry import depth_to_disparity, reprojection_error, warp_horizontal
from depthlab.models.output import DepthOutput


@pytest.fixture(scope="module")
def stereo():
    """Two synthetic stereo samples (48x64) with dense true depth, and SGM-like noisy hints."""
    cfg = SceneConfig(48, 64, 70.0, 0.25, 0.5, 10.0)
    samples = [render_sample(cfg, 0, "train", i) for i in range(2)]
    batch = {k: torch.stack([s[k] for s in samples]) for k in ("image", "image_right", "depth", "valid", "intrinsics", "baseline_m")}
    g = torch.Generator().manual_seed(0)
    hint = batch["depth"] * torch.exp(0.05 * torch.randn(batch["depth"].shape, generator=g))
    holes = torch.rand(hint.shape, generator=g) < 0.3
    batch["hint"] = torch.where(holes, torch.zeros_like(hint), hint)
    batch["hint_valid"] = ~holes
    return batch


def _hand_errors(depth, batch):
    fx, baseline = batch["intrinsics"][:, 0], batch["baseline_m"]
    warped, inside = warp_horizontal(batch["image_right"], depth_to_disparity(depth, fx, baseline))
    return reprojection_error(warped, batch["image"]), inside & (depth > 0)


def _mean(x, m):
    return (x * m).sum() / m.sum()


def test_true_depth_reconstructs_the_left_view_better_than_wrong_depth(stereo):
    loss = losses.build("photometric", automask=False)
    true, _ = loss(DepthOutput(depth=stereo["depth"].clamp_min(0.5)), stereo, stereo["valid"])
    far, _ = loss(DepthOutput(depth=stereo["depth"].clamp_min(0.5) * 1.5), stereo, stereo["valid"])
    assert true.item() < 0.5 * far.item()


def test_photometric_value_is_the_masked_mean_reprojection_error(stereo):
    depth = stereo["depth"].clamp_min(0.5) * 1.1
    error, inside = _hand_errors(depth, stereo)
    identity = reprojection_error(stereo["image_right"], stereo["image"])
    value, _ = losses.build("photometric", automask=False)(DepthOutput(depth=depth), stereo, stereo["valid"])
    assert value.item() == pytest.approx(_mean(error, inside).item(), rel=1e-6)
    keep = inside & ~(identity < error)
    value, stats = losses.build("photometric")(DepthOutput(depth=depth), stereo, stereo["valid"])
    assert value.item() == pytest.approx(_mean(error, keep).item(), rel=1e-6)
    assert stats["automasked_fraction"].item() == pytest.approx((inside & ~keep).float().mean().item(), abs=1e-7)
    assert stats["inside_fraction"].item() == pytest.approx(inside.float().mean().item(), abs=1e-7)
    # a depth far too near for the baseline warps every pixel from outside: nothing to learn from
    _, stats = losses.build("photometric")(DepthOutput(depth=torch.full_like(depth, 0.05)), stereo, stereo["valid"])
    assert stats["inside_fraction"].item() == 0.0


@pytest.mark.parametrize("automask", [False, True])
def test_hint_mode_uses_the_hint_exactly_where_it_reprojects_better(stereo, automask):
    depth = stereo["depth"].clamp_min(0.5) * 1.2  # a prediction worse than the hints in most places
    error, inside = _hand_errors(depth, stereo)
    hint_valid = stereo["hint_valid"]
    hint = torch.where(hint_valid, stereo["hint"], torch.ones_like(stereo["hint"]))
    hint_error, hint_inside = _hand_errors(hint, stereo)
    hint_error = torch.where(hint_valid & hint_inside, hint_error, hint_error + 1000)  # no hint: loses
    use = hint_error < error
    keep = inside
    if automask:
        identity = reprojection_error(stereo["image_right"], stereo["image"])
        use &= hint_error < identity
        keep = inside & ~((identity < error) & (identity <= hint_error))
    assert 0.2 < use.float().mean() < 0.9  # both outcomes occur
    expected = _mean(error, keep) + _mean(torch.log1p((hint - depth).abs()), use)

    loss = losses.build("depth_hints", mode="hint", automask=automask)
    value, stats = loss(DepthOutput(depth=depth), stereo, stereo["valid"])
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert stats["hint_fraction"].item() == pytest.approx(use.float().mean().item(), abs=1e-7)
    assert not (use & ~hint_valid).any()


def test_no_hint_at_all_gives_the_photometric_loss_and_finite_gradients(stereo):
    batch = {**stereo, "hint": torch.zeros_like(stereo["hint"]), "hint_valid": torch.zeros_like(stereo["hint_valid"])}
    depth = (stereo["depth"].clamp_min(0.5) * 1.2).requires_grad_()
    value, stats = losses.build("depth_hints", mode="hint")(DepthOutput(depth=depth), batch, stereo["valid"])
    photometric, _ = losses.build("photometric")(DepthOutput(depth=depth), batch, stereo["valid"])
    assert stats["hint_fraction"].item() == 0.0
    assert value.item() == pytest.approx(photometric.item(), rel=1e-7)
    value.backward()
    assert torch.isfinite(depth.grad).all() and depth.grad.abs().sum() > 0


def test_hard_and_sum_modes(stereo):
    depth = stereo["depth"].clamp_min(0.5) * 1.2
    out = DepthOutput(depth=depth)
    valid = stereo["hint_valid"]
    log_l1 = _mean(torch.log1p((stereo["hint"] - depth).abs()), valid)
    hard, stats = losses.build("depth_hints", mode="hard")(out, stereo, stereo["valid"])
    assert hard.item() == pytest.approx(log_l1.item(), rel=1e-6)
    assert stats["hint_fraction"].item() == pytest.approx(valid.float().mean().item())
    photometric, _ = losses.build("photometric")(out, stereo, stereo["valid"])
    total, _ = losses.build("depth_hints", mode="sum")(out, stereo, stereo["valid"])
    assert total.item() == pytest.approx(photometric.item() + log_l1.item(), rel=1e-6)
    self_only, stats = losses.build("depth_hints", mode="self")(out, stereo, stereo["valid"])
    assert self_only.item() == pytest.approx(photometric.item(), rel=1e-7) and "hint_fraction" not in stats


def test_hard_uncertainty_is_the_laplacian_nll_to_the_hint(stereo):
    from depthlab.losses.uncertainty import log_depth_nll

    depth = stereo["depth"].clamp_min(0.5) * 1.2
    log_var = torch.full_like(depth, -1.0)
    loss = losses.build("depth_hints", mode="hard_uncertainty")
    assert loss.requires_output == {"depth", "log_variance"}
    value, _ = loss(DepthOutput(depth=depth, log_variance=log_var), stereo, stereo["valid"])
    hint = torch.where(stereo["hint_valid"], stereo["hint"], torch.ones_like(stereo["hint"]))
    assert value.item() == pytest.approx(log_depth_nll(depth, hint, log_var, stereo["hint_valid"], "laplace").item(), rel=1e-7)


def test_multi_scale_predictions_are_averaged_after_upsampling_inverse_depth(stereo):
    depth = stereo["depth"].clamp_min(0.5)
    coarse = DepthOutput(depth=torch.nn.functional.avg_pool2d(depth, 2) * 1.3)
    one, _ = losses.build("photometric", automask=False)(DepthOutput(depth=depth), stereo, stereo["valid"])
    inverse = torch.nn.functional.interpolate(1 / coarse.depth, size=depth.shape[-2:], mode="bilinear", align_corners=False)
    up, _ = losses.build("photometric", automask=False)(DepthOutput(depth=1 / inverse), stereo, stereo["valid"])
    both, _ = losses.build("photometric", automask=False)(DepthOutput(depth=depth, scales=[coarse]), stereo, stereo["valid"])
    assert both.item() == pytest.approx((one.item() + up.item()) / 2, rel=1e-6)


def test_requirements_per_mode_and_bad_mode():
    assert losses.build("photometric").requires == {"image", "image_right", "intrinsics", "baseline_m"}
    assert losses.build("depth_hints", mode="self").requires == {"image", "image_right", "intrinsics", "baseline_m"}
    assert losses.build("depth_hints", mode="hint").requires >= {"image_right", "hint", "hint_valid"}
    assert "image_right" not in losses.build("depth_hints", mode="hard").requires
    with pytest.raises(ConfigError, match="mode must be one of"):
        losses.build("depth_hints", mode="soft")
