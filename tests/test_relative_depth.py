"""A relative network (affine-invariant inverse depth, no metres) through depthlab: relative losses
read it, metric losses and unaligned evaluation refuse it at start-up in one line, a scale-blind
objective on a metric network must be scored with alignment, and predict writes no metres."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn

from depthlab import losses
from depthlab.callbacks import DepthPredictionWriter
from depthlab.data import SyntheticDataModule
from depthlab.errors import ConfigError
from depthlab.losses.relative import multiscale_gradient_loss, scale_shift_invariant
from depthlab.models.output import DepthOutput
from depthlab.module import DepthModule

UNET = {"name": "unet", "encoder": "resnet18", "decoder_channels": [16, 8, 8, 8]}
RELATIVE_NET = {"class_path": f"{__name__}.RelativeNet"}


class RelativeNet(nn.Module):
    """A small relative network: a non-negative map (ReLU, as Depth Anything's relative head)."""

    provides = frozenset({"relative_inverse_depth"})

    def __init__(self, min_depth: float = 1e-3, max_depth: float = 10.0) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))

    def forward(self, image):
        return DepthOutput(None, relative_inverse_depth=torch.relu(self.body(image)) + 0.01)


def _set_up(module, stage, datamodule):
    module.trainer = SimpleNamespace(datamodule=datamodule)
    module.setup(stage)


def _data():
    return SyntheticDataModule(height=32, width=48, train_size=4, val_size=2, test_size=2, batch_size=2, num_workers=0)


ALIGNED = {"name": "none", "align": "scale_shift"}


def test_a_metric_loss_on_a_relative_network_stops_at_start_up_in_one_line():
    module = DepthModule(net=RELATIVE_NET, loss="silog", eval_protocol=ALIGNED)
    with pytest.raises(ConfigError, match=r"term 'silog' reads depth in metres, but network RelativeNet predicts "
                                          r"relative inverse depth") as exc:
        _set_up(module, TrainerFn.FITTING, _data())
    assert "\n" not in str(exc.value)
    module = DepthModule(net=RELATIVE_NET, loss={"name": "ssi", "space": "depth"}, eval_protocol=ALIGNED)
    with pytest.raises(ConfigError, match="term 'ssi' reads depth in metres"):
        _set_up(module, TrainerFn.FITTING, _data())


@pytest.mark.parametrize("stage", [TrainerFn.FITTING, TrainerFn.TESTING])
def test_a_relative_network_is_not_scored_without_alignment(stage):
    module = DepthModule(net=RELATIVE_NET, loss="ssi", eval_protocol="nyu")
    with pytest.raises(ConfigError, match=r"network RelativeNet's output is relative inverse depth.*align: scale_shift"):
        _set_up(module, stage, _data())
    _set_up(DepthModule(net=RELATIVE_NET, loss="ssi", eval_protocol=ALIGNED), stage, _data())  # aligned: accepted


def test_a_scale_blind_objective_on_a_metric_network_needs_aligned_scoring():
    module = DepthModule(net=UNET, loss="ssi")
    with pytest.raises(ConfigError, match=r"every term \(ssi\) is blind to depth's scale.*align: scale_shift"):
        _set_up(module, TrainerFn.FITTING, _data())
    _set_up(DepthModule(net=UNET, loss="ssi", eval_protocol=ALIGNED), TrainerFn.FITTING, _data())
    _set_up(DepthModule(net=UNET, loss=[{"name": "ssi", "weight": 1.0}, {"name": "silog", "weight": 1.0}]),
            TrainerFn.FITTING, _data())  # a metric term fixes the scale


def test_ssi_on_relative_output_is_ssi_on_its_reciprocal_as_depth():
    g = torch.Generator().manual_seed(0)
    r = torch.rand(2, 1, 8, 10, generator=g, dtype=torch.float64) + 0.2
    gt = torch.rand(2, 1, 8, 10, generator=g, dtype=torch.float64) * 5 + 0.5
    mask = torch.rand(2, 1, 8, 10, generator=g) > 0.2
    loss = losses.build("ssi", alpha=0.5)
    relative = loss(DepthOutput(None, relative_inverse_depth=r), {"depth": gt}, mask)
    assert float(relative) == pytest.approx(float(scale_shift_invariant(1 / r, gt, mask, alpha=0.5)), rel=1e-12)
    exact = loss(DepthOutput(None, relative_inverse_depth=2.5 / gt + 0.7), {"depth": gt}, mask)
    assert float(exact) == pytest.approx(0.0, abs=1e-14)


def test_gradient_matching_on_relative_output_is_midas_gradient_term_of_the_aligned_residual():
    g = torch.Generator().manual_seed(1)
    gt = torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64) * 5 + 0.5
    mask = torch.ones_like(gt, dtype=torch.bool)
    loss = losses.build("gradient_matching")
    assert float(loss(DepthOutput(None, relative_inverse_depth=3 / gt - 0.1), {"depth": gt}, mask)) == pytest.approx(0, abs=1e-12)
    # one pixel off by +1 after alignment with s = 1, t = 0 fitted exactly elsewhere: by hand at scale 1
    r = 1 / gt
    r2 = r.clone()
    r2[0, 0, 4, 4] += 1.0
    value = float(loss(DepthOutput(None, relative_inverse_depth=r2), {"depth": gt}, mask))
    from depthlab.losses.relative import align_scale_shift
    s, t = align_scale_shift(r2, r, mask)
    want = float(multiscale_gradient_loss(s * r2 + t - r, mask))
    assert value == pytest.approx(want, rel=1e-12) and value > 0.01


def test_relative_network_trains_with_ssi():
    torch.manual_seed(0)
    module = DepthModule(net=RELATIVE_NET, loss={"name": "ssi", "alpha": 0.5}, eval_protocol=ALIGNED, lr=1e-2)
    data = _data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    values = []
    for _ in range(30):
        total, _ = module.compute_loss(module(batch["image"]), batch)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        values.append(float(total.detach()))
    assert values[-1] < 0.8 * values[0]  # a 2-layer network levels off near 0.74 x


def test_predict_writes_relative_maps_as_npy_and_colour_and_refuses_metres(tmp_path):
    relative = torch.tensor([[0.5, 1.0], [2.0, 4.0]]).reshape(1, 1, 2, 2)
    writer = DepthPredictionWriter(output_dir=str(tmp_path))
    writer.write_on_batch_end(None, None, DepthOutput(None, relative_inverse_depth=relative), [3], {}, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000003.npy", "000003_color.png"]
    np.testing.assert_array_equal(np.load(tmp_path / "000003.npy"), relative[0, 0].numpy())
    explicit = DepthPredictionWriter(output_dir=str(tmp_path), format=["png16", "color"])
    with pytest.raises(ConfigError, match="png16 holds metres, but the network predicts relative inverse depth"):
        explicit.write_on_batch_end(None, None, DepthOutput(None, relative_inverse_depth=relative), [0], {}, 0)
