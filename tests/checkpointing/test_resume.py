"""What a checkpoint holds and how a run continues from it: last.ckpt is the final state of a run,
the training order can be entered part-way through an epoch, RNG states travel with the checkpoint,
``--ckpt_path last`` finds the config's latest run. (Stopped-and-resumed runs: test_preemption.py.)"""

from __future__ import annotations

import copy
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from depthlab.cli import run

HERE = Path(__file__).resolve().parents[1]  # tests/: checkpoint_callbacks.py


def fit(config: dict, workdir: Path, monkeypatch, *overrides: str):
    """``depthlab fit`` in this process, in ``workdir`` (the config's log paths are relative)."""
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(HERE))  # checkpoint_callbacks, by class path
    monkeypatch.setattr(sys, "argv", ["depthlab"])
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return run(["fit", "--config", str(path), "--trainer.enable_progress_bar", "false", *overrides])


def saved_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


@pytest.mark.slow
def test_last_ckpt_is_the_final_step_when_the_monitored_metric_got_worse(tiny_config_dict, tmp_path, monkeypatch):
    config = copy.deepcopy(tiny_config_dict)  # the fixture's dict is shared by the session
    config["trainer"]["max_epochs"] = 3  # 3 steps each
    config["trainer"]["callbacks"] = [
        {"class_path": "checkpoint_callbacks.WorseningMetric"},
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
         "init_args": {"monitor": "worsening", "mode": "min", "save_last": True, "filename": "best"}},
    ]
    fit(config, tmp_path, monkeypatch)
    checkpoints = tmp_path / "logs" / "tiny" / "version_0" / "checkpoints"
    assert saved_step(checkpoints / "last.ckpt") == 9
    assert saved_step(checkpoints / "best.ckpt") == 3  # the best-k file stays apart, at the best epoch


@pytest.mark.slow
def test_last_ckpt_follows_the_step_interval_and_holds_the_max_steps_end_mid_epoch(tiny_config_dict, tmp_path,
                                                                                  monkeypatch):
    config = copy.deepcopy(tiny_config_dict)  # the fixture's dict is shared by the session
    config["trainer"].update(max_epochs=2, max_steps=4)  # 3 steps per epoch: ends one step into epoch 1
    config["trainer"]["callbacks"].append({"class_path": "checkpoint_callbacks.LastStepSeen"})
    from checkpoint_callbacks import LastStepSeen

    LastStepSeen.seen = {}
    cli = fit(config, tmp_path, monkeypatch, "--last_checkpoint.every_n_train_steps", "2")
    seen = LastStepSeen.seen
    assert seen == {1: None, 2: None, 3: 2, 4: 3}  # every 2 steps, and at the end of epoch 0 (step 3)
    last = Path(cli.trainer.checkpoint_callbacks[-1].dirpath) / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert (state["global_step"], state["epoch"]) == (4, 1)


def test_the_training_order_is_a_function_of_seed_and_epoch_and_can_start_mid_epoch():
    from depthlab.data.loading import ResumableSampler

    data = list(range(10))
    sampler = ResumableSampler(data, seed=7)
    sampler.set_epoch(2)
    epoch2 = list(sampler)
    assert sorted(epoch2) == data and epoch2 != data
    assert list(ResumableSampler(data, seed=7)) != epoch2  # epoch 0: another permutation

    resumed = ResumableSampler(data, seed=7)
    resumed.resume(2, 4)
    resumed.set_epoch(2)  # Lightning sets the epoch it resumes in: the start stays
    assert list(resumed) == epoch2[4:]
    resumed.set_epoch(3)  # the next epoch starts at its beginning
    sampler.set_epoch(3)
    assert list(resumed) == list(sampler)


def test_rng_states_go_through_a_weights_only_load_and_restore_every_generator(tmp_path):
    from depthlab.checkpointing.resume import rng_states, set_rng_states

    path = tmp_path / "rng.pt"
    torch.save(rng_states(), path)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_states(torch.load(path, weights_only=True))  # Lightning loads checkpoints weights-only
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def cli_config(subcommand: str, save_dir: Path):
    from jsonargparse import Namespace

    logger = Namespace(class_path="lightning.pytorch.loggers.TensorBoardLogger",
                       init_args=Namespace(save_dir=str(save_dir), name="tiny", version=None))
    sub = Namespace(ckpt_path="last", trainer=Namespace(logger=logger, default_root_dir=None),
                    last_checkpoint=Namespace(dirpath=None, every_n_train_steps=None))
    return Namespace(subcommand=subcommand, **{subcommand: sub})


def test_ckpt_path_last_is_the_newest_last_ckpt_of_the_configs_runs_and_fit_continues_in_its_directory(tmp_path):
    from depthlab.checkpointing import prepare_ckpt_path

    runs = tmp_path / "logs" / "tiny"
    for version, mtime in (("version_0", 2_000_000_000), ("version_1", 1_000_000_000)):
        path = runs / version / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True)
        torch.save({"state_dict": {}, "pytorch-lightning_version": "2.6", "optimizer_states": [], "loops": {}}, path)
        os.utime(path, (mtime, mtime))
    (runs / "version_2").mkdir()  # a run that wrote nothing

    config = cli_config("fit", tmp_path / "logs")
    prepare_ckpt_path(config)
    assert config.fit.ckpt_path == str(runs / "version_0" / "checkpoints" / "last.ckpt")
    assert config.fit.trainer.logger.init_args.version == "version_0"  # not a new, empty version_3

    config = cli_config("test", tmp_path / "logs")
    prepare_ckpt_path(config)
    assert config.test.ckpt_path == str(runs / "version_0" / "checkpoints" / "last.ckpt")
    assert config.test.trainer.logger.init_args.version is None


def test_ckpt_path_last_without_a_run_starts_fit_afresh_and_stops_evaluation(tmp_path):
    from depthlab.checkpointing import prepare_ckpt_path
    from depthlab.errors import ConfigError

    config = cli_config("fit", tmp_path / "logs")
    prepare_ckpt_path(config)  # a job script may always pass --ckpt_path last
    assert config.fit.ckpt_path is None
    with pytest.raises(ConfigError, match="no last.ckpt"):
        prepare_ckpt_path(cli_config("validate", tmp_path / "logs"))
