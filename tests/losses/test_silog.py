"""SiLog (Eigen et al. 2014) and the BTS / GLPDepth / AdaBins presets, against hand-computed values."""

import math

import pytest
import torch

from depthlab import losses
from depthlab.errors import ConfigError
from depthlab.losses.silog import SiLogLoss, silog

LN2 = math.log(2.0)


def _maps(*values, dtype=torch.float64):
    """(1, 1, 1, n) tensors from lists, and an all-valid mask."""
    out = [torch.tensor(v, dtype=dtype).view(1, 1, 1, -1) for v in values]
    return (*out, torch.ones_like(out[0], dtype=torch.bool))


def _random(seed=0, shape=(2, 1, 5, 7), dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=g, dtype=dtype) * 9 + 0.5
    pred = target * torch.exp(0.3 * torch.randn(shape, generator=g, dtype=dtype))
    mask = torch.rand(shape, generator=g) > 0.3
    return pred, target, mask


def test_hand_values_for_pred_2_1_target_1_1():
    pred, target, mask = _maps([2.0, 1.0], [1.0, 1.0])  # d = [ln 2, 0]: mean d^2 = ln2^2/2, mean d = ln2/2
    assert silog(pred, target, mask, 0.5).item() == pytest.approx(0.375 * LN2**2, rel=1e-12)
    assert silog(pred, target, mask, 1.0).item() == pytest.approx(0.25 * LN2**2, rel=1e-12)
    assert silog(pred, target, mask, 0.0).item() == pytest.approx(0.5 * LN2**2, rel=1e-12)


def test_linear_form_equals_pairwise_form_at_lambda_1():
    pred, target, mask = _random()
    d = (pred.log() - target.log())[mask]
    n = d.numel()
    pairwise = ((d[:, None] - d[None, :]) ** 2).sum() / (2 * n * n)
    assert silog(pred, target, mask, 1.0).item() == pytest.approx(pairwise.item(), rel=1e-10)


@pytest.mark.parametrize("factor", [1e-3, 0.37, 2.0, 450.0])
def test_lambda_1_is_scale_invariant(factor):
    pred, target, mask = _random(1)
    ref = silog(pred, target, mask, 1.0)
    assert silog(pred * factor, target, mask, 1.0).item() == pytest.approx(ref.item(), rel=1e-9, abs=1e-12)
    # ... and lambda < 1 is not (otherwise the test above would prove nothing)
    if factor != 1.0:
        assert silog(pred * factor, target, mask, 0.5).item() != pytest.approx(silog(pred, target, mask, 0.5).item())


def test_lambda_0_is_log_space_mse():
    pred, target, mask = _random(2)
    mse_log = ((pred.log() - target.log())[mask] ** 2).mean()
    assert silog(pred, target, mask, 0.0).item() == pytest.approx(mse_log.item(), rel=1e-12)


def test_not_the_sum_of_squares_typo_form():
    # d = [ln 2, -ln 2]: mean(d) = 0, so the true loss is mean(d^2) = ln2^2 for every lambda.
    # The typo form mean(d^2) - lambda * sum(d^2) / n^2 would give ln2^2 * (1 - lambda / 2).
    pred, target, mask = _maps([2.0, 0.5], [1.0, 1.0])
    value = silog(pred, target, mask, 1.0).item()
    assert value == pytest.approx(LN2**2, rel=1e-12)
    assert value != pytest.approx(LN2**2 * 0.5, rel=1e-3)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("silog_bts", 10 * LN2 * math.sqrt(0.5 - 0.85 / 4)),  # 10 sqrt(mean d^2 - 0.85 mean(d)^2)
        ("silog_glpn", LN2 * math.sqrt(0.5 - 0.5 / 4)),  # sqrt(mean d^2 - 0.5 mean(d)^2)
        ("silog_adabins", 10 * LN2 * math.sqrt(0.5 + 0.15 / 4)),  # unbiased var of [ln2, 0] = ln2^2 / 2
    ],
)
def test_presets_hand_values(name, expected):
    pred, target, mask = _maps([2.0, 1.0], [1.0, 1.0])
    assert losses.build(name, eps=0.0).compute(pred, target, mask).item() == pytest.approx(expected, rel=1e-12)
    assert losses.build(name).compute(pred, target, mask).item() == pytest.approx(expected, rel=1e-7)


# The public training code, re-stated (batch pooled by boolean indexing, no guards).
def _bts_reference(p, g, m):
    d = p[m].log() - g[m].log()
    return 10.0 * torch.sqrt((d**2).mean() - 0.85 * d.mean() ** 2)


def _glpn_reference(p, g, m):
    d = g[m].log() - p[m].log()  # GLPDepth takes target minus prediction; the square hides the sign
    return torch.sqrt((d**2).mean() - 0.5 * d.mean() ** 2)


def _adabins_reference(p, g, m):
    d = p[m].log() - g[m].log()
    return 10.0 * torch.sqrt(torch.var(d) + 0.15 * d.mean() ** 2)


@pytest.mark.parametrize(
    "name, reference", [("silog_bts", _bts_reference), ("silog_glpn", _glpn_reference), ("silog_adabins", _adabins_reference)]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_presets_reproduce_the_public_formula(name, reference, seed):
    pred, target, mask = _random(seed)
    expected = reference(pred, target, mask).item()
    assert losses.build(name, eps=0.0).compute(pred, target, mask).item() == pytest.approx(expected, rel=1e-12)
    assert losses.build(name).compute(pred, target, mask).item() == pytest.approx(expected, rel=1e-6)
    pred32, target32 = pred.float(), target.float()
    assert losses.build(name).compute(pred32, target32, mask).item() == pytest.approx(expected, rel=1e-5)


def test_variance_focus_is_bts_name_for_lambda():
    pred, target, mask = _random(3)
    a = SiLogLoss(variance_focus=0.85, sqrt=True, scale=10.0).compute(pred, target, mask)
    b = SiLogLoss(lambd=0.85, sqrt=True, scale=10.0).compute(pred, target, mask)
    assert a.item() == b.item()
    assert SiLogLoss().lambd == 0.5
    with pytest.raises(ConfigError, match="not both"):
        SiLogLoss(lambd=0.5, variance_focus=0.85)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        SiLogLoss(lambd=1.5)


def test_default_is_eigen_without_root_and_zero_at_perfect_prediction():
    pred, _, mask = _random(4)
    pred = pred.clone().requires_grad_()
    value = losses.build("silog").compute(pred, pred.detach().clone(), mask)
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(pred.grad, torch.zeros_like(pred))


@pytest.mark.parametrize("name", ["silog_bts", "silog_glpn", "silog_adabins"])
def test_sqrt_silog_at_perfect_prediction_has_finite_gradient(name):
    pred, _, mask = _random(5, dtype=torch.float32)
    pred = pred.clone().requires_grad_()
    loss = losses.build(name)
    value = loss.compute(pred, pred.detach().clone(), mask)
    value.backward()
    assert torch.isfinite(pred.grad).all()
    assert value.item() == pytest.approx(loss.scale * math.sqrt(loss.eps), rel=1e-4)  # sqrt(0 + eps)


def test_the_unguarded_public_formula_gives_nan_at_perfect_prediction():
    # Why the guard exists: d sqrt(x)/dx = 1/(2 sqrt x) is infinite at x = 0 and autograd gives 0 * inf.
    pred, _, mask = _random(6)
    pred = pred.clone().requires_grad_()
    _bts_reference(pred, pred.detach().clone(), mask).backward()
    assert torch.isnan(pred.grad[mask]).all()
    pred.grad = None
    losses.build("silog_bts").compute(pred, pred.detach().clone(), mask).backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred))  # d = 0 everywhere: the exact gradient is 0


def test_root_gradient_stays_bounded_as_the_loss_nears_zero():
    # pred = target * exp(delta): x ~ delta^2, the raw root's dL/dx ~ 1/delta; with eps it is capped.
    pred, target, mask = _random(9)
    g = torch.Generator().manual_seed(9)
    noise = torch.randn(pred.shape, generator=g, dtype=pred.dtype)
    loss = SiLogLoss(lambd=0.85, sqrt=True)
    for delta in (1e-2, 1e-5, 1e-9, 0.0):
        p = (target * torch.exp(delta * noise)).requires_grad_()
        loss.compute(p, target, mask).backward()
        assert torch.isfinite(p.grad).all()
        assert p.grad.abs().max() < 10.0


def test_zero_and_negative_predictions_are_guarded():
    pred, target, mask = _maps([0.0, -1.0, 2.0], [1.0, 1.0, 1.0])
    for loss in (SiLogLoss(), SiLogLoss(sqrt=True), losses.build("silog_adabins")):
        p = pred.clone().requires_grad_()
        value = loss.compute(p, target, mask)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(p.grad).all()


def test_per_image_removes_each_image_scale():
    # Each image is its ground truth times its own constant: per image that is a pure scale.
    _, target, mask = _random(7)
    pred = target * torch.tensor([2.0, 0.25], dtype=target.dtype).view(2, 1, 1, 1)
    assert silog(pred, target, mask, 1.0, per_image=True).item() == pytest.approx(0.0, abs=1e-12)
    assert silog(pred, target, mask, 1.0).item() > 0.1  # pooled over the batch it is not one scale
    # per image with lambda 0: the mean of each image's log MSE
    d = pred.log() - target.log()
    per = [(d[i][mask[i]] ** 2).mean() for i in range(2)]
    assert silog(pred, target, mask, 0.0, per_image=True).item() == pytest.approx(sum(per).item() / 2, rel=1e-12)


def test_per_image_skips_images_without_valid_pixels():
    pred, target, mask = _random(8)
    mask = mask.clone()
    mask[1] = False
    expected = silog(pred[:1], target[:1], mask[:1], 0.5)
    assert silog(pred, target, mask, 0.5, per_image=True).item() == pytest.approx(expected.item(), rel=1e-12)


def test_unbiased_variance_of_one_pixel_is_zero_not_nan():
    pred, target, mask = _maps([2.0], [1.0])
    value = losses.build("silog_adabins", eps=0.0).compute(pred, target, mask)
    assert value.item() == pytest.approx(10 * math.sqrt(0.15) * LN2, rel=1e-12)  # var = 0, mean d = ln 2
