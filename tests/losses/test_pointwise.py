"""Pointwise losses: tables of tiny tensors with hand-computed answers."""

import math

import pytest
import torch
import torch.nn.functional as F

from depthlab import losses
from depthlab.errors import ConfigError
from depthlab.losses.pointwise import berhu, berhu_penalty, smooth_l1_penalty


def _maps(pred, target, mask=None):
    p = torch.tensor(pred, dtype=torch.float64).view(1, 1, 1, -1)
    t = torch.tensor(target, dtype=torch.float64).view(1, 1, 1, -1)
    m = torch.ones_like(p, dtype=torch.bool) if mask is None else torch.tensor(mask).view(1, 1, 1, -1)
    return p, t, m


# pred [1, 2, 4] vs target [2, 2, 2]: residuals -1, 0, 2
@pytest.mark.parametrize(
    "name, expected",
    [
        ("l1", (1 + 0 + 2) / 3),
        ("l2", (1 + 0 + 4) / 3),
        ("rmse", math.sqrt(5 / 3)),
        ("log_l1", (math.log(2) + 0 + math.log(3)) / 3),
        ("l1_inverse_depth", (0.5 + 0 + 0.25) / 3),  # |1 - 1/2|, 0, |1/4 - 1/2|
        ("smooth_l1", (0.5 + 0 + 1.5) / 3),  # sigma 1: |x| >= 1 -> |x| - 0.5
        ("berhu", ((1 + 0.16) / 0.8 + 0 + (4 + 0.16) / 0.8) / 3),  # c = 0.2 * 2 = 0.4: both above c
    ],
)
def test_hand_values(name, expected):
    pred, target, mask = _maps([1.0, 2.0, 4.0], [2.0, 2.0, 2.0])
    assert losses.build(name).compute(pred, target, mask).item() == pytest.approx(expected, rel=1e-7)


def test_invalid_pixels_do_not_count():
    pred, target, _ = _maps([1.0, 2.0, 4.0, -3.0], [2.0, 2.0, 2.0, float("nan")])
    mask = torch.tensor([True, True, True, False]).view(1, 1, 1, 4)
    for name in ("l1", "l2", "rmse", "log_l1", "l1_inverse_depth", "smooth_l1", "berhu"):
        clean = losses.build(name).compute(pred[..., :3], target[..., :3], mask[..., :3])
        p = pred.clone().requires_grad_()
        value = losses.build(name).compute(p, target, mask)
        value.backward()
        assert value.item() == pytest.approx(clean.item(), rel=1e-12), name
        assert p.grad[..., 3].item() == 0.0, name


def test_smooth_l1_worked_example_on_the_l1_distance():
    # the smooth L1 worked example: the L1 distance of [1, 2, 3] and [1.1, 2, 3.3] is 0.4.
    x = (torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64) - torch.tensor([1.1, 2.0, 3.3], dtype=torch.float64)).abs().sum()
    assert x.item() == pytest.approx(0.4)
    assert smooth_l1_penalty(x, sigma=1.0).item() == pytest.approx(0.08, rel=1e-12)  # 0.5 * 0.4^2
    assert smooth_l1_penalty(x, sigma=3.0).item() == pytest.approx(0.4 - 0.5 / 9, rel=1e-12)  # 0.3444...
    assert smooth_l1_penalty(x, sigma=3.0).item() == pytest.approx(0.34444444, abs=1e-8)
    # the same through the registered loss, on a one-pixel map with residual 0.4
    pred, target, mask = _maps([1.4], [1.0])
    assert losses.build("smooth_l1").compute(pred, target, mask).item() == pytest.approx(0.08, rel=1e-12)
    assert losses.build("smooth_l1", sigma=3.0).compute(pred, target, mask).item() == pytest.approx(0.3444444444, rel=1e-9)


def test_smooth_l1_per_pixel_mean():
    # residuals 0.1, 0, 0.3 (p - q of the worked example), averaged per pixel
    pred, target, mask = _maps([1.0, 2.0, 3.0], [1.1, 2.0, 3.3])
    assert losses.build("smooth_l1").compute(pred, target, mask).item() == pytest.approx((0.005 + 0 + 0.045) / 3, rel=1e-9)
    # sigma 3: 1/sigma^2 = 0.111: 0.1 is quadratic (4.5 * 0.01), 0.3 is linear (0.3 - 0.5/9)
    expected = (4.5 * 0.01 + 0 + 0.3 - 0.5 / 9) / 3
    assert losses.build("smooth_l1", sigma=3.0).compute(pred, target, mask).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_smooth_l1_pieces_and_torch_equivalent(sigma):
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    ours = smooth_l1_penalty(x, sigma)
    quad = x.abs() < 1 / sigma**2
    assert torch.allclose(ours[quad], 0.5 * sigma**2 * x[quad] ** 2)
    assert torch.allclose(ours[~quad], x[~quad].abs() - 0.5 / sigma**2)
    # torch's Huber-style smooth L1 with beta = 1/sigma^2 is the same function
    assert torch.allclose(ours, F.smooth_l1_loss(x, torch.zeros_like(x), beta=1 / sigma**2, reduction="none"))


def test_smooth_l1_rejects_nonpositive_sigma():
    with pytest.raises(ConfigError, match="sigma"):
        losses.build("smooth_l1", sigma=0.0)


def test_berhu_pieces():
    # residuals 0.1, -0.5, 1.0, 2.0 -> c = 0.2 * 2 = 0.4
    pred, target, mask = _maps([1.1, 0.5, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0])
    expected = [0.1, (0.25 + 0.16) / 0.8, (1.0 + 0.16) / 0.8, (4.0 + 0.16) / 0.8]
    assert berhu(pred, target, mask).item() == pytest.approx(sum(expected) / 4, rel=1e-12)
    x = torch.tensor([0.1, -0.5, 1.0, 2.0], dtype=torch.float64)
    assert torch.allclose(berhu_penalty(x, 0.4), torch.tensor(expected, dtype=torch.float64))


def test_berhu_is_l1_below_c_scaled_l2_above_and_continuous_at_c():
    c = 0.4
    below = torch.tensor([-0.4, -0.3, 0.0, 0.2, 0.4], dtype=torch.float64)
    above = torch.tensor([-2.0, -0.41, 0.5, 3.0], dtype=torch.float64)
    assert torch.equal(berhu_penalty(below, c), below.abs())
    assert torch.allclose(berhu_penalty(above, c), (above**2 + c**2) / (2 * c))
    for h in (1e-4, 1e-8):  # value and slope meet at |x| = c
        xs = torch.tensor([c - h, c, c + h], dtype=torch.float64, requires_grad=True)
        values = berhu_penalty(xs, c)
        assert values[0].item() == pytest.approx(c, abs=2 * h) and values[2].item() == pytest.approx(c, abs=2 * h)
        values.sum().backward()
        assert torch.allclose(xs.grad, torch.ones(3, dtype=torch.float64), atol=2 * h / c)


def test_berhu_threshold_comes_from_valid_pixels_of_the_whole_batch():
    pred = torch.tensor([1.5, 1.0, 1.0, 9.0], dtype=torch.float64).view(2, 1, 1, 2)
    target = torch.ones_like(pred)
    mask = torch.tensor([True, True, True, False]).view(2, 1, 1, 2)  # the residual 8 is invalid
    # c = 0.2 * 0.5 = 0.1 from image 0, applied to all images; 0.5 > c -> (0.25 + 0.01) / 0.2
    assert berhu(pred, target, mask).item() == pytest.approx((0.26 / 0.2) / 3, rel=1e-12)


def test_berhu_with_c_zero_is_zero_with_zero_gradient():
    pred, target, mask = _maps([1.0, 2.0], [1.0, 2.0])
    pred.requires_grad_()
    value = losses.build("berhu").compute(pred, target, mask)
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(pred.grad, torch.zeros_like(pred))


def test_berhu_threshold_is_constant_in_backward():
    pred, target, mask = _maps([1.1, 0.5, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0])
    pred.requires_grad_()
    berhu(pred, target, mask).backward()
    x = (pred - target).detach()
    fixed_c = torch.where(x.abs() <= 0.4, x.sign(), x / 0.4) / 4  # d/dx of the penalty at c = 0.4
    assert torch.allclose(pred.grad, fixed_c)


def test_rmse_at_perfect_prediction_is_finite():
    pred, target, mask = _maps([1.0, 2.0], [1.0, 2.0])
    pred.requires_grad_()
    value = losses.build("rmse").compute(pred, target, mask)
    value.backward()
    assert value.item() == pytest.approx(1e-4)  # sqrt(0 + eps), eps = 1e-8 m^2
    assert torch.isfinite(pred.grad).all()


def test_l1_inverse_depth_guards_nonpositive_depth():
    pred, target, mask = _maps([0.0, -2.0, 1.0], [1.0, 1.0, 1.0])
    pred.requires_grad_()
    value = losses.build("l1_inverse_depth").compute(pred, target, mask)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(pred.grad).all()
