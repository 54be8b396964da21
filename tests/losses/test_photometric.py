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


# --- one loop over candidates, and the peers' conventions as options ---------------------------------

from depthlab.losses.photometric import (  # noqa: E402
    Candidate,
    DepthHintsLoss,
    PhotometricLoss,
    hint_error,
    photometric_term,
    select_minimum,
)


def _two_scales(stereo):
    depth = stereo["depth"].clamp_min(0.5) * 1.2
    return DepthOutput(depth=depth, scales=[DepthOutput(depth=torch.nn.functional.avg_pool2d(depth, 2) * 0.9)])


@pytest.mark.parametrize("options", [{}, {"automask": False}, {"automask_average": "all", "inside_mask": False},
                                     {"identity_noise": 1e-5, "seed": 3}, {"use_scales": False}])
def test_photometric_is_depth_hints_mode_self_one_code_path(stereo, options):
    photometric = losses.build("photometric", **options)
    self_mode = losses.build("depth_hints", mode="self", **options)
    assert isinstance(photometric, DepthHintsLoss) and photometric.mode == "self"
    assert type(photometric).forward is DepthHintsLoss.forward  # no second loop
    value, stats = photometric(_two_scales(stereo), stereo, stereo["valid"])
    other, other_stats = self_mode(_two_scales(stereo), stereo, stereo["valid"])
    assert value.item() == other.item() and stats.keys() == other_stats.keys()
    assert all(stats[k].item() == other_stats[k].item() for k in stats)


def _maps(*rows):
    return [torch.tensor(r, dtype=torch.float64).view(1, 1, 1, -1) for r in rows]


def test_minimum_and_both_averages_on_hand_built_error_maps():
    warp, identity, hint = _maps([0.2, 0.5, 0.3, 0.9, 0.4], [0.4, 0.1, 0.3, 0.8, 0.4], [1.0, 1.0, 0.1, 0.5, 0.4])
    hint_ok = torch.tensor([True, True, True, False, True]).view(1, 1, 1, -1)
    inside = torch.tensor([True, True, True, True, False]).view(1, 1, 1, -1)
    selection = select_minimum([Candidate("warp", "prediction", warp, inside), Candidate("identity", "identity", identity),
                                Candidate("hint", "hint", hint, hint_ok)])
    # px0 warp; px1 identity; px2 hint (0.1); px3 identity (the hint has no value: +1000);
    # px4 a three-way tie goes to the warp (the published argmin's order), but it warps from outside
    assert selection.winner.flatten().tolist() == [0, 1, 2, 1, 0]
    assert photometric_term(selection, "kept").item() == pytest.approx((0.2 + 0.3) / 2)  # px0, px2
    assert photometric_term(selection, "all").item() == pytest.approx((0.2 + 0.1 + 0.3 + 0.8) / 4)  # px0..3
    # without the identity, the hint still needs to beat the warp; without a hint nothing else changes
    no_identity = select_minimum([Candidate("warp", "prediction", warp), Candidate("hint", "hint", hint, hint_ok)])
    assert no_identity.winner.flatten().tolist() == [0, 0, 2, 0, 0]
    assert photometric_term(no_identity, "all").item() == pytest.approx(warp.mean().item())
    # several prediction candidates (e.g. temporal frames): their per-pixel minimum, valid where the winner is
    other = _maps([0.1, 0.6, 0.6, 0.6, 0.5])[0]
    two = select_minimum([Candidate("a", "prediction", warp, inside), Candidate("b", "prediction", other)])
    assert two.error.flatten().tolist() == pytest.approx([0.1, 0.5, 0.3, 0.6, 0.4])
    assert two.valid.flatten().tolist() == [True, True, True, True, False]  # px4: a wins, from outside
    with pytest.raises(ValueError, match="role must be one of"):
        Candidate("x", "target", warp)


def test_selection_winner_is_the_published_argmin_with_ties_and_nan():
    """The role winner equals ``argmin`` over [warp, identity, hint] (the published form) on ties
    (quantised errors) and NaN (which, as in argmin, wins: a NaN error is not hidden by the selection)."""
    g = torch.Generator().manual_seed(0)
    warp, identity, hint = (torch.randint(0, 4, (2, 1, 8, 9), generator=g).double() / 4 for _ in range(3))
    warp[0, 0, 0, :3] = float("nan")
    hint[1, 0, 2, 4] = float("nan")
    selection = select_minimum([Candidate("warp", "prediction", warp), Candidate("identity", "identity", identity),
                                Candidate("hint", "hint", hint)])
    published = torch.cat([warp, identity, hint], dim=1).argmin(dim=1, keepdim=True)
    assert torch.equal(selection.winner, published)
    assert selection.winner[0, 0, 0, :3].tolist() == [0, 0, 0] and selection.winner[1, 0, 2, 4].item() == 2


def _hand(stereo, depth, fill=1.0, inside_mask=True, average="kept", automask=True):
    """The hint-mode loss of one scale, from the geometry primitives and the published rules."""
    error, inside = _hand_errors(depth, stereo)
    valid = stereo["hint_valid"]
    hint = torch.where(valid, stereo["hint"], torch.full_like(stereo["hint"], fill))
    fx, baseline = stereo["intrinsics"][:, 0], stereo["baseline_m"]
    warped, hint_inside = warp_horizontal(stereo["image_right"], depth_to_disparity(hint, fx, baseline))
    if fill == 0:  # depth-hints' projection of depth 0 reads the right image's top-left pixel
        warped = torch.where(valid, warped, stereo["image_right"][..., :1, :1].expand_as(warped))
    h_err = reprojection_error(warped, stereo["image"])
    h_ok = valid & hint_inside & (hint > 0) if inside_mask else valid
    h_err = torch.where(h_ok, h_err, h_err + 1000)
    identity = reprojection_error(stereo["image_right"], stereo["image"]) if automask else torch.full_like(error, 1e9)
    ident_wins = (identity < error) & (identity <= h_err)
    use = (h_err < error) & (h_err < identity)
    region = inside if inside_mask else torch.ones_like(inside)
    if average == "kept":
        photo = _mean(error, region & ~ident_wins)
    else:
        photo = _mean(torch.where(ident_wins, identity, error), region)
    return photo + _mean(torch.log1p((hint - depth).abs()), use), use.float().mean()


@pytest.mark.parametrize("fill", [1.0, 0.0, 3.0])
@pytest.mark.parametrize("inside_mask", [True, False])
@pytest.mark.parametrize("average", ["kept", "all"])
def test_fill_inside_mask_and_averaging_options_against_the_hand_rules(stereo, fill, inside_mask, average):
    depth = stereo["depth"].clamp_min(0.5) * 1.2
    expected, fraction = _hand(stereo, depth, fill, inside_mask, average)
    loss = losses.build("depth_hints", mode="hint", missing_hint_fill=fill, inside_mask=inside_mask, automask_average=average)
    value, stats = loss(DepthOutput(depth=depth), stereo, stereo["valid"])
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert stats["hint_fraction"].item() == pytest.approx(fraction.item(), abs=1e-7)


def test_the_fill_changes_valid_neighbours_through_the_ssim_window(stereo):
    # with 30 % of the hints missing, what is warped there changes where valid neighbours' hints win
    depth = stereo["depth"].clamp_min(0.5) * 1.2
    fractions = {}
    for fill in (1.0, 0.0):
        _, stats = losses.build("depth_hints", mode="hint", missing_hint_fill=fill)(DepthOutput(depth=depth), stereo, stereo["valid"])
        fractions[fill] = stats["hint_fraction"].item()
    assert fractions[1.0] != fractions[0.0]
    # the default is depthlab's 1 m: building it explicitly changes nothing
    default, _ = losses.build("depth_hints", mode="hint")(DepthOutput(depth=depth), stereo, stereo["valid"])
    explicit, _ = losses.build("depth_hints", mode="hint", missing_hint_fill=1.0)(DepthOutput(depth=depth), stereo, stereo["valid"])
    assert default.item() == explicit.item()


def test_fill_zero_reads_the_top_left_pixel_of_the_right_image_where_there_is_no_hint(stereo):
    valid = stereo["hint_valid"]
    hint = torch.where(valid, stereo["hint"], torch.zeros_like(stereo["hint"]))
    error, _ = hint_error(stereo, hint, valid)
    corner = stereo["image_right"][..., :1, :1].expand_as(stereo["image"]).clone()
    # a batch whose right image is that corner colour everywhere warps it anywhere: the same error map
    flat = {**stereo, "image_right": corner}
    flat_error, _ = hint_error(flat, torch.zeros_like(hint), torch.zeros_like(valid))
    no_hint_anywhere = {**stereo, "hint_valid": torch.zeros_like(valid)}
    all_missing, _ = hint_error(no_hint_anywhere, torch.zeros_like(hint), torch.zeros_like(valid))
    assert torch.equal(all_missing, flat_error)
    assert not torch.equal(error, all_missing)


@pytest.mark.parametrize("bad", [{"missing_hint_fill": -1.0}, {"automask_average": "some"}, {"identity_noise": -1e-5},
                                 {"missing_hint_fill": float("nan")}])
def test_bad_convention_options_are_one_line_errors(bad):
    with pytest.raises(ConfigError, match=f"depth_hints: {next(iter(bad))} must"):
        losses.build("depth_hints", **bad)


def test_identity_noise_is_seeded_and_of_its_stated_size(stereo):
    depth = stereo["depth"].clamp_min(0.5) * 1.2
    out = DepthOutput(depth=depth)
    noisy = lambda seed: losses.build("photometric", identity_noise=1e-5, seed=seed, automask_average="all")  # noqa: E731
    first = noisy(7)(out, stereo, stereo["valid"])[0]
    assert noisy(7)(out, stereo, stereo["valid"])[0].item() == first.item()  # same seed, same loss
    assert noisy(8)(out, stereo, stereo["valid"])[0].item() != first.item()
    plain = losses.build("photometric", automask_average="all")(out, stereo, stereo["valid"])[0]
    assert 0 < abs(first.item() - plain.item()) < 1e-5  # min(identity + noise, warp) moves by less than the noise
    draws = PhotometricLoss(identity_noise=1e-5, seed=7)._noise(torch.zeros(200_000, dtype=torch.float64))
    assert draws.std().item() == pytest.approx(1e-5, rel=0.01) and abs(draws.mean().item()) < 1e-7
    expected = 1e-5 * torch.randn(200_000, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert torch.equal(draws, expected)  # a generator seeded with `seed` on the tensors' device
