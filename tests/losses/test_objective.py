"""Combined objectives from YAML: weighted sums with every term reported separately."""

import pytest
import torch
import yaml

from depthlab import losses
from depthlab.errors import ConfigError
from depthlab.losses.pointwise import L1Loss
from depthlab.models.output import DepthOutput
from depthlab.registry import PluginError
from loss_call import call_loss


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 1, 6, 8, generator=g, dtype=torch.float64) * 4 + 1
    pred = target * torch.exp(0.2 * torch.randn(2, 1, 6, 8, generator=g, dtype=torch.float64))
    mask = torch.rand(2, 1, 6, 8, generator=g) > 0.2
    return pred, target, mask, torch.rand(2, 3, 6, 8, generator=g, dtype=torch.float64)


def test_yaml_weighted_sum_logs_each_term():
    spec = yaml.safe_load(
        """
        - name: silog
          lambd: 0.85
        - name: edge_smoothness
          weight: 0.1
        """
    )
    objective = losses.build_objective(spec)
    pred, target, mask, image = _batch()
    pred.requires_grad_()
    total, parts = call_loss(objective, pred, target, mask, image)
    silog = losses.build("silog", lambd=0.85).compute(pred, target, mask)
    smooth = call_loss(losses.build("edge_smoothness"), pred, target, mask, image)
    assert set(parts) == {"silog", "edge_smoothness"}
    assert parts["silog"].item() == pytest.approx(silog.item(), rel=1e-12)
    assert parts["edge_smoothness"].item() == pytest.approx(smooth.item(), rel=1e-12)
    assert total.item() == pytest.approx(silog.item() + 0.1 * smooth.item(), rel=1e-12)
    assert not any(p.requires_grad for p in parts.values())  # logged values, detached
    total.backward()
    assert torch.isfinite(pred.grad).all()
    assert objective.requires == {"depth", "image"} and objective.requires_output == {"depth"}


def test_single_name_and_single_mapping():
    pred, target, mask, _ = _batch(1)
    total, parts = call_loss(losses.build_objective("l1"), pred, target, mask)
    assert list(parts) == ["l1"] and total.item() == pytest.approx(parts["l1"].item())
    total, parts = call_loss(losses.build_objective({"name": "smooth_l1", "sigma": 3.0, "weight": 2.0}), pred, target, mask)
    assert total.item() == pytest.approx(2.0 * losses.build("smooth_l1", sigma=3.0).compute(pred, target, mask).item())


def test_class_path_term():
    spec = [{"class_path": "depthlab.losses.pointwise.BerHuLoss", "init_args": {"fraction": 0.5}, "weight": 0.5}]
    objective = losses.build_objective(spec)
    assert list(objective.terms) == ["BerHuLoss"] and objective.terms["BerHuLoss"].fraction == 0.5


def test_repeated_loss_gets_distinct_names():
    objective = losses.build_objective([{"name": "silog"}, {"name": "silog", "lambd": 1.0, "weight": 0.5}])
    assert list(objective.terms) == ["silog", "silog_1"]
    assert objective.weights == {"silog": 1.0, "silog_1": 0.5}


def test_every_term_sees_the_whole_output_and_batch():
    seen = {}

    class Spy(L1Loss):
        requires = frozenset({"depth", "image_right"})

        def forward(self, out, batch, mask):
            seen.update(out=out, batch=batch)
            return super().forward(out, batch, mask)

    objective = losses.WeightedSum({"spy": (1.0, Spy())})
    pred, target, mask, image = _batch(2)
    out = DepthOutput(depth=pred, log_variance=torch.zeros_like(pred))
    batch = {"depth": target, "image": image, "image_right": image.flip(-1)}
    objective(out, batch, mask)
    assert seen["out"] is out and seen["batch"] is batch
    assert objective.requires == {"depth", "image_right"}


def test_missing_batch_key_is_named_at_check_time():
    objective = losses.build_objective([{"name": "l1"}, {"name": "edge_smoothness", "weight": 0.1}])
    objective.check_requirements({"image", "depth", "valid"}, {"depth"}, "data module X")  # all there
    with pytest.raises(ConfigError, match=r"term 'edge_smoothness' requires batch key 'image', which data module X"):
        objective.check_requirements({"depth", "valid"}, None, "data module X")
    with pytest.raises(ConfigError, match=r"term 'l1' requires batch key 'depth'"):
        objective.check_requirements({"image"}, None, "data module Y")


def test_missing_network_output_is_named_at_check_time():
    objective = losses.build_objective("log_depth_nll")
    with pytest.raises(ConfigError, match=r"requires network output 'log_variance'.*uncertainty: true"):
        objective.check_requirements(None, {"depth"}, "network UNet")
    objective.check_requirements({"depth"}, {"depth", "log_variance"}, "network UNet")


@pytest.mark.parametrize(
    "spec, error, message",
    [
        ([], ConfigError, "empty"),
        ([{"name": "l1", "weight": "heavy"}], ConfigError, "weight must be a number"),
        ([{"name": "smooth_l1", "sigmaa": 3}], ConfigError, "smooth_l1"),
        ([{"name": "silgo"}], PluginError, "Did you mean 'silog'"),
        ([{"lambd": 0.5}], PluginError, "needs a 'name'"),
        ([{"class_path": "depthlab.losses.silog.SiLogLoss", "lambd": 0.5}], PluginError, "init_args"),
        ([{"class_path": "depthlab.losses.silog.SiLogLoss", "init_args": {"lamb": 0.5}}], ConfigError, "lamb"),
        ([42], PluginError, "expected a loss name or mapping"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, error, message):
    with pytest.raises(error, match=message):
        losses.build_objective(spec)


def test_the_documented_plugin_examples_work_as_documented():
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "losses.md").read_text()
    section = doc[doc.index("## Writing a loss plugin"):]
    namespace: dict = {}
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.S):
        exec(compile(block, "docs/losses.md", "exec"), namespace)
    right, scaled = namespace["MeanRightViewDifference"](), namespace["ScaledL1"](factor=2.0)
    objective = losses.WeightedSum({"right_view": (1.0, right), "scaled_l1": (1.0, scaled)})
    with pytest.raises(ConfigError, match="term 'right_view' requires batch key 'image_right'"):
        objective.check_requirements({"image", "depth", "valid"}, {"depth"}, "data module NYUDataModule")
    pred, target, mask, image = _batch(3)
    batch = {"depth": target, "image": image, "image_right": image.flip(-1)}
    total, parts = objective(DepthOutput(depth=pred), batch, mask)
    expected_scaled = 2.0 * (pred - target).abs()[mask].mean()
    assert parts["scaled_l1"].item() == pytest.approx(expected_scaled.item(), rel=1e-12)
    expected_right = ((image - image.flip(-1)).abs().mean(1, keepdim=True) / pred).mean()
    assert parts["right_view"].item() == pytest.approx(expected_right.item(), rel=1e-12)
