"""Checks every registered loss must pass. The lists come from the registry, so a new loss (also a
third-party one that is installed) is tested by being registered."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from depthlab import losses
from loss_call import call_loss

NAMES = losses.available()

# Non-default settings that change the code path, checked by gradcheck too.
VARIANTS = [
    ("silog", {"lambd": 1.0, "sqrt": True, "per_image": True}),
    ("silog", {"lambd": 0.0, "unbiased": True, "scale": 3.0}),
    ("smooth_l1", {"sigma": 3.0}),
    ("berhu", {"fraction": 0.5}),
    ("edge_smoothness", {"masked": False}),
    ("gradient_matching", {"scales": 2}),
    ("ssi", {"space": "depth", "alpha": 0.5}),
    ("log_depth_nll", {"distribution": "gaussian"}),
]


def _call(loss, pred, target, mask, image):
    return call_loss(loss, pred, target, mask, image)


def test_every_loss_is_registered_with_a_one_line_description():
    expected = {"silog", "silog_bts", "silog_glpn", "silog_adabins", "berhu", "log_l1", "smooth_l1", "l1", "l2",
                "rmse", "l1_inverse_depth", "edge_smoothness", "gradient_matching", "ssi", "log_depth_nll"}
    assert expected <= set(NAMES)
    table = losses.REGISTRY.table().splitlines()
    assert len(table) == len(NAMES)
    for name, line in zip(NAMES, table):
        description = losses.REGISTRY.describe(name)
        assert description and "\n" not in description, name
        assert line.split()[0] == name and description in line


@pytest.mark.parametrize("name", NAMES)
def test_builds_a_module_with_defaults(name):
    loss = losses.build(name)
    assert isinstance(loss, nn.Module)
    assert isinstance(loss.requires, frozenset) and isinstance(loss.requires_output, frozenset)
    assert "depth" in loss.requires_output  # every network predicts depth


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_all_invalid_mask_gives_zero_with_zero_gradient(name, dtype):
    g = torch.Generator().manual_seed(0)
    pred = (torch.rand(2, 1, 4, 5, generator=g, dtype=dtype) + 0.5).requires_grad_()
    target = torch.rand(2, 1, 4, 5, generator=g, dtype=dtype) + 0.5
    target[0, 0, 0] = float("nan")  # whatever is stored at invalid pixels must not matter
    image = torch.rand(2, 3, 4, 5, generator=g, dtype=dtype)
    mask = torch.zeros_like(pred, dtype=torch.bool)
    loss = losses.build(name)
    if "depth" not in loss.requires:
        pytest.skip("self-supervised: the ground-truth mask does not apply")
    value = _call(loss, pred, target, mask, image)
    assert value.ndim == 0 and value.item() == 0.0
    assert value.requires_grad  # attached to the graph: a training step can still call backward()
    value.backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred))


@pytest.mark.parametrize("name", NAMES)
def test_perfect_prediction_has_finite_value_and_gradient(name):
    g = torch.Generator().manual_seed(1)
    target = torch.rand(2, 1, 4, 5, generator=g) * 5 + 0.5
    pred = target.clone().requires_grad_()
    value = _call(losses.build(name), pred, target, torch.ones_like(pred, dtype=torch.bool), torch.rand(2, 3, 4, 5, generator=g))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(pred.grad).all()


def _gradcheck_inputs(seed):
    """Positive depths with residuals kept away from every kink.

    |residual| lies in [0.05, 0.3] or [0.5, 0.9] (away from 0, from smooth L1's 1, and from berHu's
    c = 0.2 * 2.0 = 0.4); the largest residual, 2.0, sits at an anchor pixel that gradcheck does not
    perturb, since berHu's c is a constant in the backward pass.
    """
    g = torch.Generator().manual_seed(seed)
    shape = (2, 1, 3, 4)
    target = torch.rand(shape, generator=g, dtype=torch.float64) + 2.0
    size = torch.where(torch.rand(shape, generator=g) < 0.5, 0.05 + 0.25 * torch.rand(shape, generator=g, dtype=torch.float64),
                       0.5 + 0.4 * torch.rand(shape, generator=g, dtype=torch.float64))
    sign = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0).double()
    pred = target + sign * size
    pred.view(-1)[0] = target.view(-1)[0] + 2.0
    mask = torch.rand(shape, generator=g) < 0.8
    mask.view(-1)[0] = True
    image = torch.rand(2, 3, 3, 4, generator=g, dtype=torch.float64)
    return pred, target, mask, image


@pytest.mark.parametrize("name, kwargs", [(n, {}) for n in NAMES] + VARIANTS, ids=lambda v: str(v) if v else "defaults")
def test_gradcheck_float64(name, kwargs):
    loss = losses.build(name, **kwargs)
    pred, target, mask, image = _gradcheck_inputs(seed=len(name))
    anchor = pred.view(-1)[:1]
    free = pred.view(-1)[1:].clone().requires_grad_()

    def f(free_values):
        p = torch.cat([anchor, free_values]).view_as(target)
        return _call(loss, p, target, mask, image)

    assert f(free).item() > 0
    assert torch.autograd.gradcheck(f, (free,), eps=1e-6, atol=1e-6, rtol=1e-4)


@st.composite
def _batches(draw):
    b = draw(st.integers(1, 3))
    h = draw(st.integers(1, 7))
    w = draw(st.integers(1, 7))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    shape = (b, 1, h, w)
    log10_centre = draw(st.floats(-3, 3))  # depths from millimetres to kilometres
    log10_spread = draw(st.floats(0, 2))
    target = 10 ** (log10_centre + log10_spread * (2 * torch.rand(shape, generator=g, dtype=torch.float64) - 1))
    pred = 10 ** (log10_centre + log10_spread * (2 * torch.rand(shape, generator=g, dtype=torch.float64) - 1))
    exact = torch.rand(shape, generator=g) < draw(st.sampled_from([0.0, 0.5, 1.0]))
    pred = torch.where(exact, target, pred)  # some (or all) pixels predicted perfectly
    bad = torch.rand(shape, generator=g) < draw(st.sampled_from([0.0, 0.1]))
    pred = torch.where(bad, -pred * torch.rand(shape, generator=g, dtype=torch.float64), pred)  # zero/negative depths
    density = draw(st.sampled_from([0.0, 0.05, 0.5, 1.0]))
    mask = torch.rand(shape, generator=g) < density
    image = torch.rand(b, 3, h, w, generator=g, dtype=torch.float64)
    return pred.to(dtype), target.to(dtype), mask, image.to(dtype)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=_batches())
def test_value_and_gradient_are_always_finite(batch):
    pred, target, mask, image = batch
    for name in NAMES:
        p = pred.clone().requires_grad_()
        value = _call(losses.build(name), p, target, mask, image)
        value.backward()
        assert value.ndim == 0
        assert torch.isfinite(value), (name, value)
        assert torch.isfinite(p.grad).all(), name
        if not mask.any() and "depth" in losses.build(name).requires:
            assert value.item() == 0.0, name


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype):
    g = torch.Generator().manual_seed(2)
    target = (torch.rand(2, 1, 4, 5, generator=g) * 5 + 0.5).to(dtype)
    pred = target.clone().requires_grad_()  # a perfect prediction: the sqrt guard must survive
    mask = torch.ones_like(pred, dtype=torch.bool)
    image = torch.rand(2, 3, 4, 5, generator=g).to(dtype)
    for name in NAMES:
        value = _call(losses.build(name), pred, target, mask, image)
        assert value.dtype == torch.float32, name
        (grad,) = torch.autograd.grad(value, pred)
        assert grad.dtype == dtype and torch.isfinite(grad).all(), name
