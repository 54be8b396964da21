"""DepthModule: masking of invalid ground truth, output contract, LR schedule."""

import pytest
import torch

from depthlab.errors import ConfigError
from depthlab.models.output import DepthOutput
from depthlab.module import DepthModule, warmup_cosine

NET = {"name": "unet", "encoder": "resnet18", "decoder_channels": [16, 8, 8, 8]}


@pytest.fixture(scope="module")
def module():
    torch.manual_seed(0)
    return DepthModule(net=NET, min_depth=0.5, max_depth=10.0).eval()


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    depth = torch.rand(2, 1, 32, 48, generator=g) * 8 + 1
    return {"image": torch.rand(2, 3, 32, 48, generator=g), "depth": depth, "valid": torch.ones_like(depth, dtype=torch.bool)}


def test_prediction_is_positive_metres_inside_the_range(module):
    with torch.no_grad():
        out = module(torch.rand(2, 3, 37, 50))
    assert isinstance(out, DepthOutput) and out.inverse_depth is None and out.log_variance is None
    assert out.depth.shape == (2, 1, 37, 50)
    assert (out.depth >= 0.5).all() and (out.depth <= 10.0).all()


def _loss(module, batch):
    """(total, mask) of the module's objective on ``batch``, as training computes it."""
    total, _ = module.compute_loss(module(batch["image"]), batch)
    return total, module.loss_mask(batch)


def test_invalid_ground_truth_never_reaches_loss_or_metrics(module):
    clean = _batch()
    dirty = {k: v.clone() for k, v in clean.items()}
    bad = torch.zeros_like(clean["depth"], dtype=torch.bool)
    bad[:, :, :4] = True
    values = [0.0, -1.0, float("nan"), float("inf"), 0.2, 50.0]  # <= 0, non-finite, outside (0.5, 10)
    dirty["depth"][bad] = torch.tensor(values).repeat(bad.sum() // len(values) + 1)[: int(bad.sum())]
    clean["depth"][bad] = 3.0  # any valid value: must not matter once masked below
    clean["valid"] = ~bad
    with torch.no_grad():
        loss_dirty, mask = _loss(module, dirty)
        loss_clean, _ = _loss(module, clean)
    assert torch.equal(mask, ~bad)
    assert torch.isfinite(loss_dirty)
    assert loss_dirty.item() == pytest.approx(loss_clean.item(), rel=1e-6)
    with torch.no_grad():
        module.evaluator.step("val", dirty, module.net, module.compute_loss)
        m_dirty = module.evaluator.compute("val")
        module.evaluator.step("val", clean, module.net, module.compute_loss)
        m_clean = module.evaluator.compute("val")
    for name in m_clean:
        assert torch.isfinite(m_dirty[name]), name
        assert m_dirty[name].item() == pytest.approx(m_clean[name].item(), rel=1e-6), name


def test_gradients_stay_finite_with_nan_ground_truth():
    torch.manual_seed(0)
    m = DepthModule(net=NET, max_depth=10.0)
    batch = _batch(1)
    batch["depth"][0, 0, 0, :10] = float("nan")
    loss, _ = m.compute_loss(m(batch["image"]), batch)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_warmup_cosine_schedule_values():
    f = warmup_cosine(total_steps=110, warmup_steps=10, min_ratio=0.01)
    assert f(0) == pytest.approx(0.1)
    assert f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.01 + 0.99 * 0.5)  # half way through the cosine
    assert f(110) == pytest.approx(0.01)
    assert f(500) == pytest.approx(0.01)


def test_bad_module_arguments_are_rejected_naming_the_key():
    with pytest.raises(ConfigError, match="min_depth"):
        DepthModule(net=NET, min_depth=5.0, max_depth=1.0)
    with pytest.raises(ConfigError, match="scheduler"):
        DepthModule(net=NET, scheduler="linear")
    with pytest.raises(ConfigError, match=r"model.lr: expected a learning rate > 0, got -0.001"):
        DepthModule(net=NET, lr=-1e-3)
    with pytest.raises(ConfigError, match=r"model.weight_decay: expected a value >= 0, got -0.1"):
        DepthModule(net=NET, weight_decay=-0.1)
    with pytest.raises(ConfigError, match=r"model.betas"):
        DepthModule(net=NET, betas=(0.9, 1.5))
    with pytest.raises(ConfigError, match="resnet_nope"):
        DepthModule(net={"name": "unet", "encoder": "resnet_nope"})
    with pytest.raises(ConfigError, match="did you mean|Did you mean"):
        DepthModule(net=NET, loss="silgo")


def test_loss_min_depth_leaves_near_ground_truth_out_of_the_loss_only():
    torch.manual_seed(0)
    plain = DepthModule(net=NET, min_depth=0.5, max_depth=10.0).eval()
    bts = DepthModule(net=NET, min_depth=0.5, max_depth=10.0, loss_min_depth=3.0).eval()
    bts.load_state_dict(plain.state_dict())
    batch = _batch(2)
    near = batch["depth"] <= 3.0
    assert near.any() and (~near).any()
    by_hand = {**batch, "valid": batch["valid"] & ~near}
    with torch.no_grad():
        loss_bts, mask_bts = _loss(bts, batch)
        loss_hand, _ = _loss(plain, by_hand)
        loss_plain, _ = _loss(plain, batch)
    assert loss_bts.item() == pytest.approx(loss_hand.item(), rel=1e-6)
    assert loss_bts.item() != pytest.approx(loss_plain.item(), rel=1e-3)
    assert torch.equal(mask_bts, by_hand["valid"])
    assert torch.equal(bts.valid_mask(batch), batch["valid"])  # the metrics' mask still holds the near pixels


def test_sgd_optimizer_option():
    with pytest.raises(ConfigError, match="model.optimizer: expected adamw or sgd, got 'adam'"):
        DepthModule(net={"name": "unet", "encoder": "resnet18", "pretrained": False}, optimizer="adam")
    with pytest.raises(ConfigError, match=r"model.momentum: expected a value in \[0, 1\)"):
        DepthModule(net={"name": "unet", "encoder": "resnet18", "pretrained": False}, optimizer="sgd", momentum=1.0)
