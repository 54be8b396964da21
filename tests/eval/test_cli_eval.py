"""``depthlab test``/``validate`` end to end: the report table and JSON, and exact numbers under DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from depthlab.cli import run
from depthlab.metrics import METRIC_NAMES, DepthMetrics
from depthlab.module import DepthModule

pytestmark = pytest.mark.slow

# 5 images (odd: 2 ranks get 3 + 2 and Lightning's sampler repeats one), sparse ground truth so
# that the images have different valid-pixel counts.
CONFIG = {
    "seed_everything": 0,
    "trainer": {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 1,
        "limit_train_batches": 1,
        "num_sanity_val_steps": 0,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "logs", "name": "ev"}},
        "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True}}],
    },
    "model": {"net": {"name": "unet", "encoder": "test_resnet", "pretrained": False, "decoder_channels": [16, 8]}},
    "data": {
        "class_path": "depthlab.data.SyntheticDataModule",
        "init_args": {"height": 32, "width": 48, "train_size": 2, "val_size": 5, "test_size": 5,
                      "batch_size": 2, "num_workers": 0, "gt_density": 0.6},
    },
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(workdir, config, checkpoint) after one training step."""
    work = tmp_path_factory.mktemp("eval")
    cfg = work / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    cwd = os.getcwd()
    os.chdir(work)
    try:
        run(["fit", "--config", str(cfg)])
    finally:
        os.chdir(cwd)
    ckpt = next((work / "logs" / "ev").glob("version_*/checkpoints/last.ckpt"))
    return work, cfg, ckpt


def test_depthlab_test_prints_one_table_in_paper_order_and_writes_json(checkpoint, monkeypatch, capsys):
    work, cfg, ckpt = checkpoint
    monkeypatch.chdir(work)
    capsys.readouterr()
    cli = run(["test", "--config", str(cfg), "--ckpt_path", str(ckpt), "--model.eval_protocol", "{name: none, averaging: pixel}"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split() == list(METRIC_NAMES))
    printed = [float(v) for v in lines[header + 1].split()]
    assert "Test metric" not in out  # Lightning's alphabetical table is replaced, not added

    report = json.loads((Path(cli.trainer.log_dir) / "test_metrics.json").read_text())
    assert list(report["metrics"]) == list(METRIC_NAMES)
    assert printed == pytest.approx([report["metrics"][n] for n in METRIC_NAMES], abs=5e-5)
    assert report["images"] == 5 and report["skipped"] == 0
    assert report["protocol"]["averaging"] == "pixel"  # the command line wins over the checkpoint
    assert report["ckpt_path"] == str(ckpt)

    # Independent reference: the checkpoint's weights on every test image, pooled per pixel.
    model = DepthModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    data = cli.datamodule.dataset("test")
    metric = DepthMetrics(1e-3, 10.0, averaging="pixel")
    with torch.no_grad():
        for i in range(len(data)):
            batch = {k: v[None] for k, v in data[i].items()}
            metric.update(model(batch["image"]).depth, batch["depth"], batch["valid"])
    want = metric.compute()
    for name in METRIC_NAMES:
        assert report["metrics"][name] == pytest.approx(float(want[name]), rel=1e-6), name


def test_validate_under_ddp_counts_every_image_once_and_matches_one_device(checkpoint, monkeypatch, capsys):
    work, cfg, ckpt = checkpoint
    monkeypatch.chdir(work)
    single_cli = run(["validate", "--config", str(cfg), "--ckpt_path", str(ckpt)])
    single = json.loads((Path(single_cli.trainer.log_dir) / "val_metrics.json").read_text())

    env = {k: v for k, v in os.environ.items() if k not in ("DEPTHLAB_TRACEBACK", "MASTER_PORT", "MASTER_ADDR")}
    proc = subprocess.run(
        [sys.executable, "-m", "depthlab.cli", "validate", "--config", str(cfg), "--ckpt_path", str(ckpt),
         "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.devices", "2"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = proc.stdout.split("metrics written to ")[-1].strip()
    ddp = json.loads((work / path).read_text())
    assert ddp["devices"] == 2
    assert ddp["images"] == single["images"] == 5  # Lightning's sampler ran 6: the repeat has no weight
    for name in METRIC_NAMES:
        assert ddp["metrics"][name] == pytest.approx(single["metrics"][name], rel=1e-9, abs=1e-12), name
    # val/loss is a mean over images too: the repeat is left out and batching does not matter
    assert ddp["loss"] == pytest.approx(single["loss"], rel=1e-6)
