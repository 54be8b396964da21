"""Class-path optimizers and schedulers from the command line and a config, stepped by Lightning; a
frozen encoder through real optimizer steps; the evaluation protocol a checkpoint carries into ``test``.
Tiny runs (32x48 images, a few steps): slow tier."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from depthlab.cli import main
from depthlab.data import SyntheticDataModule
from depthlab.module import DepthModule

FAST = ["--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false"]


def _record_steps(monkeypatch) -> list[tuple[str, dict[str, float]]]:
    """Per optimizer step: the optimizer's class and each group's lr it steps with."""
    steps: list[tuple[str, dict[str, float]]] = []
    original = DepthModule.optimizer_step

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
        groups = optimizer.param_groups
        steps.append((type(optimizer.optimizer).__name__, {g.get("name", "all"): g["lr"] for g in groups}))
        return original(self, epoch, batch_idx, optimizer, optimizer_closure)

    monkeypatch.setattr(DepthModule, "optimizer_step", optimizer_step)
    return steps


def _write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_class_paths_from_the_command_line_are_stepped_per_step(tmp_path, tiny_config_dict, monkeypatch, caplog):
    caplog.set_level("INFO")
    monkeypatch.chdir(tmp_path)
    steps = _record_steps(monkeypatch)
    rc = main(["fit", "--config", str(_write(tmp_path, tiny_config_dict)), "--trainer.max_steps", "3", *FAST,
               "--model.optimizer", "torch.optim.SGD", "--model.optimizer.lr", "0.01",
               "--model.lr_scheduler", "torch.optim.lr_scheduler.StepLR", "--model.lr_scheduler.step_size", "1",
               "--model.lr_scheduler.gamma", "0.5"])
    assert rc in (0, None)
    assert [name for name, _ in steps] == ["SGD"] * 3
    assert [lrs["all"] for _, lrs in steps] == pytest.approx([0.01, 0.005, 0.0025])  # 0.01 x 0.5^k, model.lr is 1e-3
    assert ("; lr 0.01 (model.optimizer.lr); optimizer SGD(lr=0.01); schedule StepLR(step_size=1, gamma=0.5), "
            "stepped per step") in caplog.text
    [ckpt] = (tmp_path / "logs" / "tiny").glob("version_*/checkpoints/last.ckpt")
    hparams = torch.load(ckpt, weights_only=True)["hyper_parameters"]
    assert hparams["optimizer"]["class_path"] == "torch.optim.SGD" and hparams["optimizer"]["init_args"]["lr"] == 0.01


@pytest.mark.slow
def test_class_paths_from_a_config_with_groups_and_epoch_stepping(tmp_path, tiny_config_dict, monkeypatch):
    config = copy.deepcopy(tiny_config_dict)
    config["model"].update(
        optimizer={"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.002}},
        lr_scheduler={"class_path": "torch.optim.lr_scheduler.ExponentialLR", "init_args": {"gamma": 0.5}},
        lr_scheduler_interval="epoch", encoder_lr_mult=0.5,
    )
    monkeypatch.chdir(tmp_path)
    steps = _record_steps(monkeypatch)
    rc = main(["fit", "--config", str(_write(tmp_path, config)), "--trainer.max_epochs", "2",
               "--trainer.limit_train_batches", "2", *FAST])
    assert rc in (0, None)
    assert [name for name, _ in steps] == ["AdamW"] * 4
    assert [lrs["rest"] for _, lrs in steps] == pytest.approx([0.002, 0.002, 0.001, 0.001])  # once per epoch
    assert [lrs["encoder"] for _, lrs in steps] == pytest.approx([0.001, 0.001, 0.0005, 0.0005])


class _Snapshots(L.Callback):
    """Per training batch: did the encoder's / the rest's parameters change in this step?"""

    def __init__(self) -> None:
        self.encoder_changed, self.rest_changed = [], []

    @staticmethod
    def _params(module, encoder: bool):
        return {n: p.detach().clone() for n, p in module.named_parameters() if n.startswith("net.encoder.") == encoder}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.before = (self._params(module, True), self._params(module, False))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        for before, changed, encoder in zip(self.before, (self.encoder_changed, self.rest_changed), (True, False)):
            after = self._params(module, encoder)
            changed.append(not all(torch.equal(before[n], after[n]) for n in before))


@pytest.mark.slow
@pytest.mark.parametrize("max_nonfinite", [10, 0], ids=["guard", "no_guard"])
def test_a_frozen_encoder_stays_unchanged_for_n_steps_then_trains(tmp_path, max_nonfinite):
    torch.manual_seed(0)
    # AdamW with weight decay: decay alone would move every weight the optimizer steps
    module = DepthModule(net={"name": "unet", "encoder": "resnet18", "pretrained": False, "decoder_channels": [16, 8, 8, 8]},
                         freeze_encoder_steps=2, weight_decay=0.1, max_nonfinite=max_nonfinite)
    data = SyntheticDataModule(height=32, width=48, train_size=8, val_size=2, test_size=2, batch_size=2, num_workers=0)
    snapshots = _Snapshots()
    trainer = L.Trainer(accelerator="cpu", max_steps=4, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        callbacks=[snapshots])
    trainer.fit(module, data)
    assert snapshots.encoder_changed == [False, False, True, True]
    assert snapshots.rest_changed == [True, True, True, True]


@pytest.mark.slow
def test_test_of_a_checkpoint_uses_its_eval_protocol_unless_another_is_stated(tmp_path, tiny_config_dict, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, tiny_config_dict)
    assert main(["fit", "--config", str(path), "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1",
                 "--trainer.enable_progress_bar", "false",
                 "--model.eval_protocol", "{name: none, median_scaling: true}"]) in (0, None)
    [ckpt] = (tmp_path / "logs" / "tiny").glob("version_*/checkpoints/last.ckpt")
    assert torch.load(ckpt, weights_only=True)["hyper_parameters"]["eval_protocol"] == {"name": "none", "median_scaling": True}

    used = []
    monkeypatch.setattr(DepthModule, "on_test_start", lambda self: used.append(self.stage_evaluators["test"].protocol),
                        raising=False)
    base = ["test", "--config", str(path), "--ckpt_path", str(ckpt), "--trainer.enable_progress_bar", "false"]
    assert main(base) in (0, None)
    assert main([*base, "--model.eval_protocol", "{name: none, averaging: pixel}"]) in (0, None)
    assert [(p.median_scaling, p.averaging) for p in used] == [(True, "image"), (False, "pixel")]
