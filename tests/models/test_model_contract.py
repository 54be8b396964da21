"""The output contract, checked for every network registered under ``depthlab.models``.

Registering a network (an entry point) is enough for it to be tested here: the cases are read
from ``depthlab.models.available()`` at collection time, with each network's default arguments.
"""

from __future__ import annotations

import pytest
import torch

from depthlab import models
from depthlab.losses.silog import silog
from depthlab.models.heads import LOG_VARIANCE_BOUND
from depthlab.models.output import DepthOutput
from depthlab.models.performance import image_to_channels_last, to_channels_last
from network_args import accepts, network_spec

MIN_DEPTH, MAX_DEPTH = 1e-3, 10.0

NETWORKS = models.available()
SIZES = [(64, 96), (50, 70)]  # the second is not divisible by 32 (nor by 2 at every stride)
TRAIN_LR = {"eigen2014": 1e-4}  # its wide FC layers overshoot with AdamW at 1e-3 (docs/models.md)


def build(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return models.build(network_spec(name, **kwargs), min_depth=MIN_DEPTH, max_depth=MAX_DEPTH)


def test_registry_lists_depthlabs_networks() -> None:
    assert {"unet", "eigen2014", "glpn"} <= set(NETWORKS)
    table = models.REGISTRY.table()
    for name in ("unet", "eigen2014", "glpn"):
        line = next(line for line in table.splitlines() if line.startswith(name + " "))
        assert "cannot load" not in line and len(line.split(None, 1)[1]) > 10


@pytest.mark.parametrize("name", NETWORKS)
def test_forward_backward_two_sizes(name: str) -> None:
    net = build(name).train()
    for height, width in SIZES:
        image = torch.rand(2, 3, height, width)
        out = net(image)
        assert isinstance(out, DepthOutput) and out.available() == {"depth"}  # default arguments: depth only
        depth = out.depth
        assert depth.shape == (2, 1, height, width)
        assert depth.dtype == torch.float32
        assert torch.isfinite(depth).all()
        assert (depth > 0).all() and depth.min() >= MIN_DEPTH and depth.max() <= MAX_DEPTH
        net.zero_grad()
        depth.log().mean().backward()
        grads = [p.grad for p in net.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", NETWORKS)
def test_inverse_depth_and_uncertainty_outputs(name: str) -> None:
    if not (accepts(name, "output") and accepts(name, "uncertainty")):
        pytest.skip(f"{name} has no DepthHead (no output/uncertainty arguments)")
    image = torch.rand(1, 3, *SIZES[1])
    inverse_net, uncertain_net = build(name, output="inverse_depth").eval(), build(name, uncertainty=True).eval()
    with torch.no_grad():
        inv = inverse_net(image)
        both = uncertain_net(image)
    assert inv.available() == inverse_net.head.provides == {"depth", "inverse_depth"}
    assert inv.inverse_depth.shape == inv.depth.shape == (1, 1, *SIZES[1])
    assert inv.inverse_depth.min() >= 1 / MAX_DEPTH and inv.inverse_depth.max() <= 1 / MIN_DEPTH
    torch.testing.assert_close(inv.depth, 1 / inv.inverse_depth)  # depth stays metres, also after resizing
    assert both.available() == uncertain_net.head.provides == {"depth", "log_variance"}
    assert both.log_variance.shape == both.depth.shape == (1, 1, *SIZES[1])
    assert both.depth.min() >= MIN_DEPTH and both.depth.max() <= MAX_DEPTH
    assert both.log_variance.abs().max() <= LOG_VARIANCE_BOUND and torch.isfinite(both.log_variance).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", NETWORKS)
def test_trains_on_synthetic_data(name: str, synthetic_batch) -> None:
    """A few AdamW steps on one batch of procedural rooms lower the SiLog loss."""
    if name == "hf":  # its tiny random transformer plateaus for ~8 steps; test_hf.py trains it 20 steps instead
        pytest.skip("hf: tests/models/test_hf.py::test_a_few_training_steps_reduce_the_loss")
    net = build(name).train()
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=TRAIN_LR.get(name, 1e-3))
    image, gt, valid = synthetic_batch["image"], synthetic_batch["depth"], synthetic_batch["valid"]
    losses = []
    for _ in range(6):
        loss = silog(net(image).depth, torch.where(valid, gt, torch.ones_like(gt)), valid)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-2:]) / 2 < 0.9 * losses[0], losses


@pytest.mark.parametrize("name", NETWORKS)
def test_channels_last_and_bf16_match_fp32(name: str) -> None:
    net = build(name).eval()
    image = torch.rand(2, 3, *SIZES[1])
    with torch.no_grad():
        reference = net(image).depth
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = net(image).depth
        to_channels_last(net)
        nhwc = net(image_to_channels_last(image)).depth
    torch.testing.assert_close(nhwc, reference, rtol=1e-4, atol=1e-4)
    assert mixed.dtype == torch.float32  # the head returns float32 metres under autocast
    # bf16 keeps ~3 significant digits; compare in log depth, the scale the losses use
    assert (mixed.log() - reference.log()).abs().max() < 0.05
