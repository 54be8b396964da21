"""Where a run's files go: one root directory knob, evaluation runs apart from training runs, and a
run that fails before its first checkpoint leaves nothing behind."""

from __future__ import annotations

import copy

import pytest
import yaml

from depthlab.cli import main, run


@pytest.fixture
def config(tmp_path, tiny_config_dict):
    """The tiny config without a logger of its own (as the shipped configs): depthlab's default applies."""
    config = copy.deepcopy(tiny_config_dict)  # a session fixture: other tests read it too
    del config["trainer"]["logger"]
    config["trainer"]["enable_progress_bar"] = False
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_default_root_dir_alone_moves_logs_and_checkpoints_and_evaluations_live_apart(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(["fit", "--config", str(config), "--trainer.default_root_dir", "elsewhere"])
    run_dir = tmp_path / "elsewhere" / "tiny" / "version_0"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and list(run_dir.glob("events.out.tfevents.*"))
    assert not (tmp_path / "lightning_logs").exists() and not (tmp_path / "logs").exists()

    run(["test", "--config", str(config), "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"),
         "--trainer.default_root_dir", "elsewhere"])
    assert (tmp_path / "elsewhere" / "tiny" / "test" / "version_0" / "test_metrics.json").is_file()
    assert sorted(p.name for p in (tmp_path / "elsewhere" / "tiny").iterdir()) == ["test", "version_0"]


@pytest.mark.slow
def test_a_run_that_fails_before_any_checkpoint_leaves_nothing(config, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # fails at start-up, after the logger and its config.yaml exist: the loss needs an output the network lacks
    code = main(["fit", "--config", str(config), "--trainer.default_root_dir", "runs", "--model.loss", "log_depth_nll"])
    assert code == 2 and "log_variance" in capsys.readouterr().err
    assert not list((tmp_path / "runs").rglob("version_*"))
