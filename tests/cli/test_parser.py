"""depthlab's parser (depthlab/parser.py) and dispatcher (depthlab/cli.py): what a command line means,
and the one-line errors for what it cannot mean."""

from __future__ import annotations

import sys

import pytest
import torch
import yaml

from depthlab.cli import main, run
from depthlab.commands import COMMANDS


@pytest.fixture(autouse=True)
def _own_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["depthlab"])  # main() is given its arguments; pytest's are not for it
    monkeypatch.delenv("DEPTHLAB_TRACEBACK", raising=False)


def _printed_trainer(tiny_config, capsys, *args: str) -> dict:
    with pytest.raises(SystemExit):
        run(["fit", "--config", str(tiny_config), *args, "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)["trainer"]


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("depthlab: error: "), err
    return err[0]


def test_an_integer_batch_limit_is_a_number_of_batches_and_a_decimal_a_fraction(tiny_config, capsys):
    trainer = _printed_trainer(tiny_config, capsys, "--trainer.limit_val_batches", "1", "--trainer.limit_train_batches",
                               "2", "--trainer.limit_test_batches", "0.5", "--trainer.limit_predict_batches", "1.0",
                               "--trainer.val_check_interval", "1")
    got = {k: trainer[k] for k in ("limit_val_batches", "limit_train_batches", "limit_test_batches",
                                   "limit_predict_batches", "val_check_interval")}
    assert got == {"limit_val_batches": 1, "limit_train_batches": 2, "limit_test_batches": 0.5,
                   "limit_predict_batches": 1.0, "val_check_interval": 1}
    assert type(got["limit_val_batches"]) is int and type(got["limit_predict_batches"]) is float
    assert type(got["val_check_interval"]) is int and type(got["limit_train_batches"]) is int
    # and in a config file: the tiny config's `limit_train_batches: 3` is three batches
    assert type(_printed_trainer(tiny_config, capsys)["limit_train_batches"]) is int


@pytest.mark.parametrize("where", ["command line", "config file"])
@pytest.mark.parametrize("key", ["optimizer", "lr_scheduler"])
def test_lightnings_top_level_optimizer_options_are_refused_naming_the_model_ones(tiny_config, tmp_path, capsys,
                                                                               key, where):
    value = "torch.optim.SGD" if key == "optimizer" else "torch.optim.lr_scheduler.StepLR"
    if where == "command line":
        args = ["--config", str(tiny_config), f"--{key}", value]
    else:
        config = yaml.safe_load(tiny_config.read_text())
        config[key] = {"class_path": value, "init_args": {"lr": 0.01} if key == "optimizer" else {"step_size": 2}}
        path = tmp_path / "with_optimizer.yaml"
        path.write_text(yaml.safe_dump(config))
        args = ["--config", str(path)]
    assert main(["fit", *args]) == 2
    line = _one_error_line(capsys)
    assert f"--{key}" in line and f"--model.{key}" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_an_accelerator_the_machine_lacks_is_one_line(tiny_config, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", str(tiny_config), "--trainer.accelerator", "gpu"]) == 2
    line = _one_error_line(capsys)
    assert "trainer:" in line and "gpu" in line.lower()


def test_every_other_command_is_a_registered_front_end_with_a_help_line():
    assert {"losses", "models", "data", "hints", "export", "experiment"} <= set(COMMANDS.available())
    for name in COMMANDS.available():
        front_end = COMMANDS.get(name)
        assert callable(front_end) and COMMANDS.describe(name), name


def test_the_dispatcher_runs_a_registered_front_end(capsys):
    assert main(["models"]) == 0
    assert "unet" in capsys.readouterr().out


@pytest.mark.slow
def test_enable_checkpointing_false_trains_and_limit_val_batches_1_validates_one_batch(tiny_config, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = run(["fit", "--config", str(tiny_config), "--trainer.enable_checkpointing", "false",
               "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false"])
    assert cli.trainer.global_step == 3
    assert cli.trainer.num_val_batches == [1]  # the tiny config's val split has 2 batches
    assert cli.trainer.checkpoint_callbacks == [] and not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.slow
def test_a_run_that_stops_before_its_first_validation_does_not_warn_about_the_monitored_key(tiny_config, tmp_path,
                                                                                           monkeypatch, recwarn):
    monkeypatch.chdir(tmp_path)
    cli = run(["fit", "--config", str(tiny_config), "--trainer.max_steps", "2", "--trainer.enable_progress_bar",
               "false"])
    assert cli.trainer.global_step == 2 and list(tmp_path.rglob("last.ckpt"))
    assert not [w for w in recwarn if "monitored key" in str(w.message)]
