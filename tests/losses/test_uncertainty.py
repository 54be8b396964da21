"""Negative log-likelihood of log depth with predicted variance: exact densities, minimiser, gradients."""

import math

import pytest
import torch

from depthlab import losses
from depthlab.errors import ConfigError
from depthlab.losses.uncertainty import log_depth_nll
from depthlab.models.output import DepthOutput


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 1, 4, 5, generator=g, dtype=torch.float64) * 5 + 0.5
    pred = target * torch.exp(0.3 * torch.randn(2, 1, 4, 5, generator=g, dtype=torch.float64))
    log_var = torch.randn(2, 1, 4, 5, generator=g, dtype=torch.float64)
    mask = torch.rand(2, 1, 4, 5, generator=g) > 0.3
    return pred, target, log_var, mask


@pytest.mark.parametrize("distribution", ["gaussian", "laplace"])
def test_equals_the_negative_log_density_of_torch_distributions(distribution):
    pred, target, log_var, mask = _inputs()
    r = (pred.log() - target.log())[mask]
    sigma = torch.exp(0.5 * log_var[mask])
    if distribution == "gaussian":
        expected = -torch.distributions.Normal(0.0, sigma).log_prob(r).mean()
    else:  # variance sigma^2 = 2 b^2
        expected = -torch.distributions.Laplace(0.0, sigma / math.sqrt(2)).log_prob(r).mean()
    value = log_depth_nll(pred, target, log_var, mask, distribution)
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)


def test_hand_value_laplace():
    # r = ln 2, s = 0: b = 1/sqrt(2); NLL = ln(2 b) + |r| / b = ln(sqrt 2) + sqrt(2) ln 2
    pred = torch.tensor([2.0], dtype=torch.float64).view(1, 1, 1, 1)
    target = torch.ones_like(pred)
    value = log_depth_nll(pred, target, torch.zeros_like(pred), torch.ones_like(pred, dtype=torch.bool), "laplace")
    assert value.item() == pytest.approx(0.5 * math.log(2) + math.sqrt(2) * math.log(2), rel=1e-12)


@pytest.mark.parametrize("distribution", ["gaussian", "laplace"])
def test_best_log_variance_matches_the_error(distribution):
    # d NLL / d s = 0 at s = ln r^2 (gaussian) and s = ln(2 r^2) (laplace: b = |r|)
    r = 0.2
    pred = torch.full((1, 1, 1, 1), math.exp(r), dtype=torch.float64)
    target = torch.ones_like(pred)
    best = math.log(r * r) if distribution == "gaussian" else math.log(2 * r * r)
    s = torch.tensor([[[[best]]]], dtype=torch.float64, requires_grad=True)
    value = log_depth_nll(pred, target, s, torch.ones_like(pred, dtype=torch.bool), distribution)
    (grad,) = torch.autograd.grad(value, s)
    assert abs(grad.item()) < 1e-12


def test_gradcheck_in_depth_and_log_variance():
    pred, target, log_var, mask = _inputs(1)
    pred.requires_grad_()
    log_var.requires_grad_()
    for distribution in ("gaussian", "laplace"):
        assert torch.autograd.gradcheck(lambda p, s: log_depth_nll(p, target, s, mask, distribution), (pred, log_var))


def test_plugin_needs_log_variance_and_reads_it_from_the_output():
    loss = losses.build("log_depth_nll", distribution="gaussian")
    assert loss.requires_output == {"depth", "log_variance"} and loss.requires == {"depth"}
    pred, target, log_var, mask = _inputs(2)
    value = loss(DepthOutput(depth=pred, log_variance=log_var), {"depth": target}, mask)
    assert value.item() == pytest.approx(log_depth_nll(pred, target, log_var, mask, "gaussian").item(), rel=1e-15)
    with pytest.raises(ValueError, match="uncertainty: true"):
        loss(DepthOutput(depth=pred), {"depth": target}, mask)
    with pytest.raises(ConfigError, match="distribution"):
        losses.build("log_depth_nll", distribution="cauchy")
