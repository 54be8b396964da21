"""Stopping a run: SIGTERM (a preempted job) or Ctrl+C during ``depthlab fit`` writes ``last.ckpt`` of
that step, says so in one line and exits non-zero; DataLoader workers end quietly; a preempted run
resumed with ``--ckpt_path last`` ends bit-identical to one never interrupted."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parents[1]  # tests/: checkpoint_callbacks.py


def depthlab_fit(workdir: Path, config: dict, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``depthlab fit`` in a subprocess, in its own process group (a signal to the group stays in it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**{k: v for k, v in os.environ.items() if k != "DEPTHLAB_TRACEBACK"}, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))  # checkpoint_callbacks
    return subprocess.run(
        [sys.executable, "-m", "depthlab.cli", "fit", "--config", str(path), "--trainer.enable_progress_bar", "false",
         *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600, start_new_session=True,
    )


def signal_at(step: int, signal: str = "SIGTERM", group: bool = False) -> dict:
    return {"class_path": "checkpoint_callbacks.SignalAt", "init_args": {"step": step, "signal": signal, "group": group}}


def last_ckpt(workdir: Path, version: str = "version_0") -> Path:
    return workdir / "logs" / "tiny" / version / "checkpoints" / "last.ckpt"


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def exact_config(tiny_config_dict) -> dict:
    """Two epochs of 3 steps, deterministic, from 6 batches of data (so a resumed run that restarted
    its epoch's order, or took another order, would train on other samples); cosine LR schedule."""
    config = copy.deepcopy(tiny_config_dict)  # the fixture's dict is shared by the session
    config["trainer"].update(max_epochs=2, deterministic=True)
    config["data"]["init_args"]["train_size"] = 24
    return config


@pytest.fixture(scope="module")
def stopped(tmp_path_factory, exact_config) -> tuple[Path, subprocess.CompletedProcess]:
    """A run sent SIGTERM by itself at step 4: mid-way through its second epoch."""
    work = tmp_path_factory.mktemp("stopped")
    config = {**exact_config, "trainer": {**exact_config["trainer"],
                                         "callbacks": [*exact_config["trainer"]["callbacks"], signal_at(4)]}}
    return work, depthlab_fit(work, config)


def test_sigterm_saves_the_step_it_stopped_at_says_so_once_and_exits_143(stopped):
    work, proc = stopped
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    state = load(last_ckpt(work))
    assert (state["global_step"], state["epoch"]) == (4, 1)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("depthlab: stopped by")]
    assert lines == [f"depthlab: stopped by SIGTERM at epoch 1, step 4: saved {last_ckpt(work).relative_to(work)} "
                     "(resume with --ckpt_path last)"]


def test_a_preempted_run_resumed_with_ckpt_path_last_is_bit_identical_to_an_uninterrupted_one(
        stopped, exact_config, tmp_path):
    work = tmp_path / "resumed"
    shutil.copytree(stopped[0], work)  # the stopped run stays as it was for the other test
    resumed = depthlab_fit(work, exact_config, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"--ckpt_path last: {last_ckpt(work).relative_to(work)}" in resumed.stderr
    assert not (work / "logs" / "tiny" / "version_1").exists()  # the run continued in its own directory
    assert "dataloader is not resumable" not in resumed.stderr  # Lightning knows the order is restored

    uninterrupted = depthlab_fit(tmp_path / "uninterrupted", exact_config)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]

    got, want = load(last_ckpt(work)), load(last_ckpt(tmp_path / "uninterrupted"))
    assert got["global_step"] == want["global_step"] == 6
    assert got["state_dict"].keys() == want["state_dict"].keys()
    for name, tensor in want["state_dict"].items():
        assert torch.equal(got["state_dict"][name], tensor), name
    got_opt, want_opt = got["optimizer_states"][0], want["optimizer_states"][0]
    assert got_opt["state"].keys() == want_opt["state"].keys() and got_opt["param_groups"] == want_opt["param_groups"]
    for index, state in want_opt["state"].items():
        for key, value in state.items():
            assert torch.equal(got_opt["state"][index][key], value), (index, key)
    assert got["lr_schedulers"] == want["lr_schedulers"]


def test_sigterm_to_the_whole_process_group_ends_dataloader_workers_quietly(tiny_config_dict, tmp_path):
    config = copy.deepcopy(tiny_config_dict)  # the fixture's dict is shared by the session
    config["data"]["init_args"]["num_workers"] = 1
    config["trainer"]["callbacks"].append(signal_at(2, group=True))  # as scancel: main process and workers
    proc = depthlab_fit(tmp_path, config)
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and not re.search(r"DataLoader worker .* (killed|exited)", proc.stderr)
    assert load(last_ckpt(tmp_path))["global_step"] == 2


def test_ctrl_c_stops_at_the_end_of_the_step_with_last_ckpt_and_exit_status_130(tiny_config_dict, tmp_path):
    config = copy.deepcopy(tiny_config_dict)  # the fixture's dict is shared by the session
    config["trainer"]["callbacks"].append(signal_at(2, signal="SIGINT"))
    proc = depthlab_fit(tmp_path, config)
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert load(last_ckpt(tmp_path))["global_step"] == 2
    assert "depthlab: stopped by SIGINT at epoch 0, step 2: saved" in proc.stderr
    # Lightning's signal connector, handed the SIGINT, names it (it said "Received SIGTERM: 2")
    assert "Received SIGINT: 2" in proc.stderr and "Received SIGTERM" not in proc.stderr, proc.stderr[-3000:]


def test_slurm_auto_requeue_keeps_lightnings_requeue_signal_beside_the_stop_handlers(tiny_config_dict, tmp_path):
    """Lightning's SLURMEnvironment(auto_requeue=True): SIGUSR1 saves an hpc checkpoint (through the
    atomic CheckpointIO) and requeues (no scontrol here: it says so and goes on); depthlab's SIGINT
    handler sits beside Lightning's handlers."""
    config = copy.deepcopy(tiny_config_dict)  # the fixture's dict is shared by the session
    config["trainer"].update(max_steps=2, num_sanity_val_steps=0, limit_val_batches=0, default_root_dir="root",
                             plugins=[{"class_path": "lightning.pytorch.plugins.environments.SLURMEnvironment",
                                       "init_args": {"auto_requeue": True}}])
    config["trainer"]["callbacks"] += [{"class_path": "checkpoint_callbacks.RecordSetup"},
                                       signal_at(1, signal="SIGUSR1")]
    slurm = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "depthlab", "SLURM_JOB_ID": "1", "SLURM_PROCID": "0",
             "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}
    proc = depthlab_fit(tmp_path, config, env=slurm)
    assert proc.returncode == 0, proc.stderr[-3000:]
    setup = json.loads((tmp_path / "setup.json").read_text())
    assert setup == {"SIGINT": "GracefulStop._stop", "SIGTERM": "_HandlersCompose", "SIGUSR1": "_HandlersCompose",
                     "checkpoint_io": "AtomicCheckpointIO"}
    assert "Handling auto-requeue signal" in proc.stderr  # Lightning's SIGUSR1 handler ran
    assert load(tmp_path / "root" / "hpc_ckpt_1.ckpt")["global_step"] == 1  # SIGUSR1 at step 1
    assert load(last_ckpt(tmp_path))["global_step"] == 2  # and training went on to its end
