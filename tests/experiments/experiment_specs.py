"""Shared by the tests of depthlab/experiments/: a throw-away experiment folder."""

from __future__ import annotations

from pathlib import Path

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
