"""Training on several devices: a 2-process CPU (gloo) fit, and the learning rate it reports and uses."""

from __future__ import annotations

import copy
import csv
import importlib.util
import os
import subprocess
import sys

import lightning as L
import pytest
import torch
import yaml

from depthlab.cli import run
from depthlab.data import SyntheticDataModule
from depthlab.errors import ConfigError
from depthlab.module import DepthModule

NET = {"name": "unet", "encoder": "test_resnet", "decoder_channels": [16, 8, 8, 8]}


def _ddp_fit(path, cwd) -> subprocess.CompletedProcess:
    """``depthlab fit --config path`` in two CPU processes under DDP (a fresh interpreter: DDP spawns)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_PORT", "MASTER_ADDR", "DEPTHLAB_TRACEBACK")}
    proc = subprocess.run(
        [sys.executable, "-m", "depthlab.cli", "fit", "--config", str(path), "--trainer.strategy", "ddp",
         "--trainer.accelerator", "cpu", "--trainer.devices", "2"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_linear_lr_scaling_uses_the_effective_batch(tmp_path, caplog):
    caplog.set_level("INFO")
    module = DepthModule(net=NET, lr=1e-3, lr_scaling="linear", base_batch_size=2)
    data = SyntheticDataModule(height=32, width=48, train_size=8, val_size=2, test_size=2, batch_size=4, num_workers=0)
    trainer = L.Trainer(accelerator="cpu", max_steps=1, accumulate_grad_batches=2, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(module, data)
    # 4 per device x 1 device x 2 accumulation = 8 = 4 x the base batch of 2
    assert trainer.optimizers[0].param_groups[0]["initial_lr"] == pytest.approx(4e-3)
    assert "effective batch 8 = 4 per device x 1 devices x 2 accumulation; lr 0.004 (linear scaling" in caplog.text
    with pytest.raises(ConfigError, match="model.base_batch_size"):
        DepthModule(net=NET, lr_scaling="linear")


@pytest.mark.slow
def test_two_process_ddp_fit_and_one_process_validate_of_its_checkpoint_agree(tmp_path, tiny_config_dict, monkeypatch):
    config = copy.deepcopy(tiny_config_dict)  # a session fixture: other tests read it too
    config["trainer"]["logger"] = {"class_path": "lightning.pytorch.loggers.CSVLogger",
                                   "init_args": {"save_dir": "logs", "name": "ddp"}}
    config["trainer"]["enable_progress_bar"] = False
    config["data"]["init_args"].update(train_size=8, val_size=5, batch_size=2)  # 5: odd, the sampler pads
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = _ddp_fit(path, tmp_path)
    assert "effective batch 4 = 2 per device x 2 devices x 1 accumulation" in proc.stdout + proc.stderr
    version = next((tmp_path / "logs" / "ddp").glob("version_*"))
    rows = [r for r in csv.DictReader((version / "metrics.csv").open()) if r.get("val/abs_rel")]
    ddp_final = {k: float(v) for k, v in rows[-1].items() if k.startswith("val/") and v}
    assert ddp_final["val/images"] == 5  # every image once, the padding repeat has no weight

    monkeypatch.chdir(tmp_path)
    ckpt = next(version.glob("checkpoints/last.ckpt"))
    cli = run(["validate", "--config", str(path), "--ckpt_path", str(ckpt), "--trainer.logger", "false"])
    single = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("val/")}
    for name in ("val/abs_rel", "val/rmse", "val/delta1", "val/silog", "val/loss"):
        assert single[name] == pytest.approx(ddp_final[name], rel=1e-5), name


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="the hf extra is not installed")
def test_two_process_ddp_trains_an_hf_network_with_a_pose_network_from_video(tmp_path, tiny_config_dict):
    """Monocular video (M) with a pose network and a transformers network under DDP: every parameter
    that receives no gradient would stop DDP's default reducer (find_unused_parameters=False)."""
    config = copy.deepcopy(tiny_config_dict)
    config["trainer"]["enable_progress_bar"] = False
    config["model"].update(
        net={"name": "hf", "kind": "metric", "input_size": 56, "config": {
            "model_type": "depth_anything", "patch_size": 14, "neck_hidden_sizes": [8, 16, 32, 32],
            "fusion_hidden_size": 16, "head_hidden_size": 8, "reassemble_hidden_size": 32,
            "backbone_config": {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 4,
                                "num_attention_heads": 2, "intermediate_size": 64, "patch_size": 14, "image_size": 56,
                                "out_features": ["stage1", "stage2", "stage3", "stage4"], "reshape_hidden_states": False}}},
        pose_net={"name": "monodepth2", "encoder": "test_resnet", "pretrained": False},
        loss={"name": "photometric", "frame_ids": [0, -1, 1]}, eval_protocol={"name": "none", "align": "median"},
        min_depth=0.5, max_depth=20.0)
    config["data"]["init_args"].update(train_size=8, val_size=4, batch_size=2, frame_ids=[0, -1, 1])
    path = tmp_path / "ddp_video.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = _ddp_fit(path, tmp_path)
    assert "effective batch 4 = 2 per device x 2 devices" in proc.stdout + proc.stderr
    [ckpt] = list(tmp_path.rglob("last.ckpt"))
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert any(k.startswith("pose_net.") for k in state) and any(k.startswith("net.model.backbone.") for k in state)
    # the checkpoint as `depthlab odometry` reads it: the pose network's spec and weights, nothing else
    from depthlab.pose.odometry import load_pose_net

    net, settings = load_pose_net(ckpt)
    assert settings["pose_net"]["encoder"] == "test_resnet" and not net.training
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, state[f"pose_net.{key}"], rtol=0, atol=0)
