"""Shared by the tests of depthlab/experiments/: a throw-away experiment folder."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import yaml


def write_spec(folder: Path, spec: dict, configs: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "experiment.yaml").write_text(yaml.safe_dump(spec))
    for name, text in (configs or {}).items():
        (folder / name).write_text(text)
    return folder


BASE = {"title": "t", "question": "q?", "variants": [{"name": "a", "configs": ["a.yaml"]}], "scales": {"small": {"seeds": [0, 1]}}}


def no_commands(argv: list[str]) -> int:
    """A command runner for experiments that must not run a depthlab command (script experiments)."""
    raise AssertionError(f"a script experiment ran a depthlab command: {argv}")



class StopAtStep(L.Callback):
    """Stops training after ``step`` optimizer steps the way SIGTERM does (Lightning's flag, raised as
    ``SIGTERMException`` at the end of that step; depthlab writes ``last.ckpt`` and exits 143): a
    killed job, without sending a signal to the test process."""

    def __init__(self, step: int = 1) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args, **kwargs) -> None:
        if trainer.global_step >= self.step:
            trainer._signal_connector.received_sigterm = True  # what its SIGTERM handler sets
