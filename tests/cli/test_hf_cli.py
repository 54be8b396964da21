"""An hf network through the command line: `depthlab test` of a pretrained folder with no checkpoint
(the published network as it is), refused without alignment when relative; fine-tuned a step with the
recipe's parameter groups and poly decay, then exported."""

from __future__ import annotations

import json
import sys

import pytest
import torch

pytest.importorskip("transformers")

from depthlab.cli import main  # noqa: E402
from depthlab.models.hf import HFDepthNetwork  # noqa: E402

DA = {"model_type": "depth_anything", "patch_size": 14, "neck_hidden_sizes": [8, 16, 32, 32], "fusion_hidden_size": 16,
      "head_hidden_size": 8, "reassemble_hidden_size": 32,
      "backbone_config": {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
                          "intermediate_size": 64, "patch_size": 14, "image_size": 56,
                          "out_features": ["stage1", "stage2", "stage3", "stage4"], "reshape_hidden_states": False}}


@pytest.fixture(autouse=True)
def _argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["depthlab"])


def _config(tmp_path, folder, eval_protocol, extra_model="", net=""):
    path = tmp_path / "hf.yaml"
    path.write_text(f"""
seed_everything: 0
trainer: {{max_epochs: 1, limit_train_batches: 2, limit_val_batches: 1, accelerator: cpu, devices: 1,
          enable_progress_bar: false, default_root_dir: {tmp_path / 'runs'}}}
model:
  net: {{name: hf, pretrained: {folder}, input_size: 56{net}}}
  eval_protocol: {eval_protocol}
  max_depth: 10.0
{extra_model}
data:
  class_path: depthlab.data.SyntheticDataModule
  init_args: {{height: 48, width: 64, train_size: 4, val_size: 2, test_size: 3, batch_size: 2, num_workers: 0}}
""")
    return str(path)


@pytest.mark.slow
def test_a_published_relative_network_is_tested_as_it_is_and_only_aligned(tmp_path, capsys):
    torch.manual_seed(0)
    HFDepthNetwork(config=DA).save_pretrained(tmp_path / "da")
    config = _config(tmp_path, tmp_path / "da", "{name: none, align: scale_shift}", "  loss: ssi")
    assert main(["test", "--config", config]) == 0
    [report] = (tmp_path / "runs").rglob("test_metrics.json")
    values = json.loads(report.read_text())
    assert values["images"] == 3 and values["ckpt_path"] is None
    assert 0 < values["metrics"]["abs_rel"] < 1 and values["protocol"]["align"] == "scale_shift"
    capsys.readouterr()
    assert main(["test", "--config", _config(tmp_path, tmp_path / "da", "none", "  loss: ssi")]) != 0
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "relative inverse depth" in errors[0] and "align: scale_shift" in errors[0]


@pytest.mark.slow
def test_the_metric_recipe_fine_tunes_and_exports(tmp_path, capsys, caplog):
    torch.manual_seed(0)
    HFDepthNetwork(config=DA).save_pretrained(tmp_path / "da")
    recipe = """  loss: silog_glpn
  lr: 5.0e-5
  encoder_lr_mult: 0.1
  lr_scheduler: {class_path: torch.optim.lr_scheduler.PolynomialLR, init_args: {power: 0.9}}"""
    config = _config(tmp_path, tmp_path / "da", "none", recipe, net=", kind: metric, load: backbone")
    assert main(["fit", "--config", config]) == 0
    assert "PolynomialLR(power=0.9, total_iters=2)" in caplog.text  # the start-up lines are logged
    assert "encoder (79 tensors" in caplog.text and "lr 5e-06 = 0.1 x lr" in caplog.text
    [ckpt] = (tmp_path / "runs").rglob("last.ckpt")
    onnx = tmp_path / "da.onnx"
    assert main(["export", "--config", config, "--ckpt_path", str(ckpt), "--output", str(onnx)]) == 0
    assert onnx.is_file() and "checked against PyTorch" in capsys.readouterr().out
