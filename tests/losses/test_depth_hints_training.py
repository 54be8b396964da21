"""Every Depth Hints supervision mode gives a finite loss and finite gradients on the synthetic
stereo batches, with the hint fraction reported, also when no pixel of any image has a hint (fast,
one batch per mode through ``DepthModule.compute_loss``); and one short fit logs the hint fraction
every step (slow)."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from depthlab.data import SyntheticDataModule
from depthlab.losses.photometric import MODES
from depthlab.module import DepthModule


def _module(mode: str) -> DepthModule:
    torch.manual_seed(0)
    net = {"name": "unet", "encoder": "resnet18", "decoder_channels": [16, 8, 8, 8], "output": "inverse_depth",
           "num_scales": 2, "uncertainty": mode == "hard_uncertainty"}
    return DepthModule(
        net=net,
        loss=[{"name": "depth_hints", "mode": mode}, {"name": "edge_smoothness", "weight": 0.001, "masked": False}],
        min_depth=0.1, max_depth=20.0,
    )


def _data(width: int) -> SyntheticDataModule:
    # at width 48 every SGM setting (numDisparities >= 64) is wider than the image: no hint anywhere
    return SyntheticDataModule(height=32, width=width, train_size=4, val_size=2, test_size=2, batch_size=2,
                               num_workers=0, hints_on_the_fly=True)


@pytest.fixture(scope="module", params=[48, 96], ids=["no-hint-at-all", "some-hints"])
def stereo_batch(request):
    data = _data(request.param)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert bool(batch["hint_valid"].any()) == (request.param == 96)
    return request.param, batch


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_a_finite_loss_and_gradients(stereo_batch, mode):
    width, batch = stereo_batch
    module = _module(mode)
    total, parts = module.compute_loss(module(batch["image"]), batch)
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    if mode != "self":
        assert "depth_hints/hint_fraction" in parts  # reported on every step
        if width == 48:
            assert parts["depth_hints/hint_fraction"].item() == 0.0


class _Record(L.Callback):
    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")})
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.slow
def test_the_paper_mode_trains_and_logs_the_hint_fraction_every_step(tmp_path):
    module = _module("hint")
    record = _Record()
    trainer = L.Trainer(accelerator="cpu", max_steps=2, limit_val_batches=1, num_sanity_val_steps=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[record], default_root_dir=tmp_path)
    trainer.fit(module, _data(96))
    assert len(record.steps) == 2
    for step in record.steps:
        assert torch.isfinite(torch.tensor(step["train/loss"]))
        assert "train/depth_hints/hint_fraction" in step  # logged every step
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert torch.isfinite(trainer.callback_metrics["val/loss"])
