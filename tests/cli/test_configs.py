"""Every shipped config parses with the CLI's own parser, and its loss gets what it reads from its data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

import depthlab.data.nyu  # noqa: F401  h5py's first import runs `uname -p` (platform.processor) in a
from depthlab import losses  # subprocess: imported at collection, before the fast tier's guard (conftest.py)
from depthlab.cli import run

CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[2] / "configs").glob("*.yaml") if p.name != "base.yaml")


@pytest.fixture(autouse=True)
def _own_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["depthlab"])  # run() is given its arguments; pytest's are not for it


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses_with_the_cli_parser(path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # --print_config prints the resolved config and exits
        run(["fit", "--config", str(path), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["net"] and printed["data"]["class_path"].startswith("depthlab.data.")


def _module_kwargs(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["model"]


@pytest.mark.parametrize("name, stereo", [("kitti_depth_hints.yaml", True), ("synthetic_depth_hints.yaml", True)])
def test_depth_hints_configs_loss_is_satisfied_by_their_data(name, stereo):
    from depthlab.data import KITTIDataModule, SyntheticDataModule

    path = next(p for p in CONFIGS if p.name == name)
    config = yaml.safe_load(path.read_text())
    objective = losses.build_objective(config["model"]["loss"])
    if "kitti" in name:
        provides = KITTIDataModule(stereo=stereo, hints_root="/somewhere").provides
    else:
        args = config["data"]["init_args"]
        provides = SyntheticDataModule(hints_root=args["hints_root"]).provides
    objective.check_requirements(provides, {"depth", "inverse_depth"}, name)  # raises if a key is missing
    assert {"hint", "image_right", "baseline_m"} <= objective.requires
    # the same loss on data without hints stops with the key named
    with pytest.raises(Exception, match="hint"):
        objective.check_requirements(KITTIDataModule(stereo=True).provides, None, "no hints")


def test_the_shared_trainer_block_lives_once_in_base_yaml(capsys):
    from depthlab.cli import base_config

    base = yaml.safe_load(Path(base_config()).read_text())["trainer"]
    for path in CONFIGS:
        trainer = yaml.safe_load(path.read_text())["trainer"]
        assert "logger" not in trainer and "default_root_dir" not in trainer, path.name
    # every command starts from base.yaml: its callbacks are in the resolved config
    with pytest.raises(SystemExit):
        run(["fit", "--config", str(CONFIGS[0]), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)["trainer"]
    assert printed["default_root_dir"] == base["default_root_dir"]
    assert any("ModelCheckpoint" in c["class_path"] for c in printed["callbacks"])


@pytest.mark.parametrize("name", ["kitti_mono.yaml", "kitti_mono_stereo.yaml", "synthetic_mono.yaml"])
def test_video_configs_loss_is_satisfied_by_their_data_and_pose_network(name):
    from depthlab.data import KITTIDataModule, SyntheticDataModule

    config = yaml.safe_load(next(p for p in CONFIGS if p.name == name).read_text())
    args = config["data"]["init_args"]
    objective = losses.build_objective(config["model"]["loss"])
    keep = {k: args[k] for k in ("frame_ids", "stereo", "hints_root", "train_gt_source") if k in args}
    data = KITTIDataModule(**keep) if "kitti" in name else SyntheticDataModule(frame_ids=args["frame_ids"])
    objective.check_requirements(data.provides, {"depth", "inverse_depth", "poses"}, name)
    assert {"image_f-1", "image_f+1", "intrinsics"} <= objective.requires
    assert config["model"]["pose_net"]["name"] == "monodepth2"
    align = config["model"]["eval_protocol"]["align"]
    assert align == ("none" if "s" in args["frame_ids"] else "median")  # M is scale-ambiguous, MS metric
    if "kitti" in name:
        assert "depth" not in data.provides  # trains without ground truth (train_gt_source: none)
