"""Files the CLI tests hand to ``depthlab``: a small-decoder copy of the tiny config and a checkpoint of
an (untrained) DepthModule, written the way Lightning writes them."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml


def write_small_config(work: Path, tiny_config: dict) -> tuple[dict, Path]:
    """``tiny_config`` with a 16-8-8-8 decoder, written to ``work/tiny.yaml``: (config, path)."""
    config = copy.deepcopy(tiny_config)
    config["model"]["net"]["decoder_channels"] = [16, 8, 8, 8]
    path = work / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return config, path


def save_checkpoint(model, path: Path) -> Path:
    """``model`` (a LightningModule) as a Lightning checkpoint at ``path``, without training it."""
    import lightning as L

    trainer = L.Trainer(logger=False, enable_checkpointing=False, accelerator="cpu", devices=1)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    return path
