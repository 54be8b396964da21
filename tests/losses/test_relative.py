"""Gradient matching (MegaDepth, log space) and the MiDaS scale-and-shift-invariant loss."""

import math

import pytest
import torch

from depthlab import losses
from depthlab.losses.relative import align_scale_shift, multiscale_gradient_loss, scale_shift_invariant


def _row(*rows):
    out = [torch.tensor(r, dtype=torch.float64).view(1, 1, 1, -1) for r in rows]
    return (*out, torch.ones_like(out[0], dtype=torch.bool))


def _random(seed, shape=(2, 1, 6, 8)):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=g, dtype=torch.float64) * 4 + 1
    pred = target * torch.exp(0.2 * torch.randn(shape, generator=g, dtype=torch.float64))
    return pred, target, torch.rand(shape, generator=g) > 0.25


# --- gradient matching -------------------------------------------------------------------------


def test_gradient_matching_hand_value():
    # R = ln(pred / target) = [0, ln 2, 0]. Scale 1: |dx R| = ln2 + ln2 over M = 3 pixels.
    # Scale 2 keeps pixels 0 and 2 (R = 0, 0): 0. Scales 3 and 4 keep one pixel: 0.
    pred, target, mask = _row([1.0, 2.0, 1.0], [1.0, 1.0, 1.0])
    assert losses.build("gradient_matching").compute(pred, target, mask).item() == pytest.approx(2 * math.log(2) / 3, rel=1e-12)
    assert losses.build("gradient_matching", scales=1).compute(pred, target, mask).item() == pytest.approx(2 * math.log(2) / 3, rel=1e-12)


def test_gradient_matching_second_scale_by_hand():
    # R = [0, 0, ln 2, 0, 0]: scale 1 has |dx| = ln2 twice over 5 pixels; scale 2 keeps [0, ln2, 0]
    # (pixels 0, 2, 4): ln2 twice over 3 pixels.
    pred, target, mask = _row([1.0, 1.0, 2.0, 1.0, 1.0], [1.0] * 5)
    expected = 2 * math.log(2) / 5 + 2 * math.log(2) / 3
    assert losses.build("gradient_matching").compute(pred, target, mask).item() == pytest.approx(expected, rel=1e-12)


def test_gradient_matching_vertical_and_masked_pairs():
    residual = torch.tensor([[0.0, 1.0], [2.0, 4.0]], dtype=torch.float64).view(1, 1, 2, 2)
    mask = torch.tensor([[True, True], [True, False]]).view(1, 1, 2, 2)
    # valid pairs: (0,0)-(0,1) dx = 1; (0,0)-(1,0) dy = 2; pixel (1,1) is in no pair; M = 3
    assert multiscale_gradient_loss(residual, mask, scales=1).item() == pytest.approx(3 / 3)


def test_gradient_matching_is_scale_invariant_and_zero_for_a_scaled_prediction():
    pred, target, mask = _random(0)
    loss = losses.build("gradient_matching")
    assert loss.compute(pred * 3.3, target, mask).item() == pytest.approx(loss.compute(pred, target, mask).item(), rel=1e-9)
    assert loss.compute(target * 0.25, target, mask).item() == pytest.approx(0.0, abs=1e-12)


# --- scale-and-shift invariant ------------------------------------------------------------------


def test_ssi_hand_value_in_depth_space():
    # p = [1, 2, 3], g = [1, 3, 2]: s = cov/var = 1/2, t = 2 - 1 = 1; aligned [1.5, 2, 2.5];
    # residual [0.5, -1, 0.5]; sum r^2 = 1.5 over 2M = 6 -> 0.25
    pred, target, mask = _row([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    s, t = align_scale_shift(pred, target, mask)
    assert (s.item(), t.item()) == (pytest.approx(0.5), pytest.approx(1.0))
    assert losses.build("ssi", space="depth").compute(pred, target, mask).item() == pytest.approx(0.25, rel=1e-12)
    # with MiDaS' gradient term: residual [0.5, -1, 0.5]: |dx| = 1.5 + 1.5 over M = 3 at scale 1,
    # scale 2 keeps [0.5, 0.5]: 0; so 0.25 + 0.5 * 1
    assert losses.build("ssi", space="depth", alpha=0.5).compute(pred, target, mask).item() == pytest.approx(0.75, rel=1e-12)


def test_ssi_is_zero_for_any_affine_disparity():
    _, target, mask = _random(1)
    disparity = 1 / target
    pred = 1 / ((disparity + 0.5) / 3.0)  # disparity of pred = (gt disparity + 0.5) / 3
    assert losses.build("ssi").compute(pred, target, mask).item() == pytest.approx(0.0, abs=1e-16)
    assert losses.build("ssi").compute(pred, target, mask).item() < losses.build("ssi", space="depth").compute(pred, target, mask).item()


def test_ssi_aligns_each_image_separately():
    _, target, mask = _random(2)
    scale = torch.tensor([2.0, 0.1], dtype=target.dtype).view(2, 1, 1, 1)
    shift = torch.tensor([-1.0, 5.0], dtype=target.dtype).view(2, 1, 1, 1)
    pred = target * scale + shift
    assert losses.build("ssi", space="depth").compute(pred, target, mask).item() == pytest.approx(0.0, abs=1e-16)
    s, t = align_scale_shift(pred, target, mask)
    assert torch.allclose(s.flatten(), 1 / scale.flatten()) and torch.allclose(t.flatten(), (-shift / scale).flatten())


def test_ssi_pools_the_batch_like_midas():
    # two images, 3 and 1 valid pixels: sum of squared aligned residuals over 2 * 4
    pred = torch.tensor([[1.0, 2.0, 3.0], [7.0, 1.0, 1.0]], dtype=torch.float64).view(2, 1, 1, 3)
    target = torch.tensor([[1.0, 3.0, 2.0], [4.0, 1.0, 1.0]], dtype=torch.float64).view(2, 1, 1, 3)
    mask = torch.tensor([[True, True, True], [True, False, False]]).view(2, 1, 1, 3)
    # image 0: sum r^2 = 1.5 (hand value above); image 1 has one pixel: s = 0, t = 4, residual 0
    assert scale_shift_invariant(pred, target, mask, space="depth").item() == pytest.approx(1.5 / 8, rel=1e-12)


def test_constant_prediction_aligns_to_the_mean():
    pred, target, mask = _row([2.0, 2.0, 2.0], [1.0, 2.0, 6.0])
    s, t = align_scale_shift(pred, target, mask)
    assert s.item() == 0.0 and t.item() == pytest.approx(3.0)
    pred.requires_grad_()
    value = scale_shift_invariant(pred, target, mask, space="depth")
    value.backward()
    assert value.item() == pytest.approx((4 + 1 + 9) / 6)  # the variance of the target, halved
    assert torch.isfinite(pred.grad).all()


def test_ssi_gradient_equals_gradient_with_alignment_held_fixed():
    # (s, t) minimise the data term, so its derivative through them vanishes (envelope theorem):
    # a check that the closed form is the least-squares optimum.
    pred, target, mask = _random(3)
    pred.requires_grad_()
    scale_shift_invariant(pred, target, mask).backward()
    p, g = 1 / pred, 1 / target
    s, t = align_scale_shift(p.detach(), g, mask)
    r = torch.where(mask, s * p + t - g, torch.zeros_like(p))
    fixed = torch.autograd.grad(r.square().sum() / (2 * mask.sum()), pred)[0]
    assert torch.allclose(pred.grad, fixed, atol=1e-12)


def test_ssi_rejects_unknown_space():
    with pytest.raises(ValueError, match="inverse_depth"):
        losses.build("ssi", space="inverse")
