"""Shared fixtures: a tiny end-to-end configuration that trains in seconds on a CPU."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

TINY_CONFIG = {
    "seed_everything": 0,
    "trainer": {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 1,
        "limit_train_batches": 3,
        "log_every_n_steps": 1,
        "enable_model_summary": False,
        "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                   "init_args": {"save_dir": "logs", "name": "tiny"}},
        "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                       "init_args": {"monitor": "val/abs_rel", "mode": "min", "save_last": True}}],
    },
    "model": {
        "net": {"name": "unet", "encoder": "resnet18", "pretrained": False, "decoder_channels": [32, 16, 8, 8]},
        "loss": "silog",
        "max_depth": 10.0,
        "lr": 1e-3,
    },
    "data": {
        "class_path": "depthlab.data.SyntheticDataModule",
        "init_args": {"height": 32, "width": 48, "train_size": 12, "val_size": 5, "test_size": 5,
                      "batch_size": 4, "num_workers": 0},
    },
}


@pytest.fixture(scope="session")
def tiny_config_dict() -> dict:
    """A fresh copy of TINY_CONFIG (fixtures of any scope can use it)."""
    return copy.deepcopy(TINY_CONFIG)


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    """Write the tiny config into a temp dir (logs go there too: paths are relative to the cwd)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_CONFIG))
    return path
