"""``depthlab experiment run --launcher local|slurm`` (depthlab/experiments/fanout.py, depthlab/launch.py):
the same numbers as a sequential run, a killed job resumed from its last.ckpt, dependency waves, failures
named with their logs, the sbatch text submitit would submit, and the partial report."""

from __future__ import annotations

import json
import pickle
import re
import sys
from pathlib import Path

import pytest

from depthlab.errors import ConfigError
from depthlab.experiments import load_experiment
from depthlab.launch import Job, LaunchOptions, Outcome, SlurmOptions
from experiment_specs import no_commands, write_spec


def _tables(out: Path, name: str) -> dict:
    return json.loads((out / "tiny" / "report" / name / "results.json").read_text())["tables"]


def _train_steps(path: Path) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.step for e in acc.Scalars("train/loss")] if "train/loss" in acc.Tags()["scalars"] else []


@pytest.mark.slow
def test_local_jobs_give_the_sequential_numbers_and_a_killed_job_resumes_from_its_last_ckpt(tmp_path, monkeypatch):
    """silog_sqrt at its tiny scale (the experiment tests' own), seeds 0 and 1: sequentially in this
    process, then as two local jobs at once, where seed 1 had been stopped by SIGTERM after one of its
    two steps: the resumed job continues from that last.ckpt (same version folder, steps after 1 only)
    and results.json has the sequential run's numbers."""
    pytest.importorskip("matplotlib")
    from depthlab.cli import main
    from depthlab.experiments import main as experiment
    from depthlab.experiments.runner import ExperimentError, run_variant

    monkeypatch.chdir(tmp_path)
    run = ["run", "silog_sqrt", "--scale", "tiny", "--seeds", "0,1"]
    assert experiment([*run, "--out", "seq"], main) == 0

    exp = load_experiment("silog_sqrt")
    stop = '{"class_path": "experiment_specs.StopAtStep", "init_args": {"step": 1}}'

    def killed(argv: list[str]) -> int:  # the job's fit stops as SIGTERM stops it, after step 1
        return main([*argv, "--trainer.callbacks+", stop] if argv[0] == "fit" else argv)

    with pytest.raises(ExperimentError, match=r"seed 1: fit failed \(exit status 143\)"):
        run_variant(exp, exp.variant("root"), "tiny", 1, Path("par"), run_command=killed, log=lambda m: None)
    seed1 = tmp_path / "par" / "tiny" / "root" / "seed1"
    (version,) = seed1.glob("root/version_*")
    (first_events,) = version.glob("events.out.tfevents.*")
    assert max(_train_steps(first_events)) <= 1 and not (seed1 / "run.json").exists()

    assert experiment([*run, "--out", "par", "--launcher", "local", "--jobs", "2"], no_commands) == 0
    assert _same(_tables(tmp_path / "par", "silog_sqrt"), _tables(tmp_path / "seq", "silog_sqrt"))

    log = (seed1 / "job.log").read_text()
    assert "resuming it (--ckpt_path last)" in log and f"Restored all states from the checkpoint at {version}" in log
    assert list(seed1.glob("root/version_*")) == [version]  # continued in the same version folder
    later = [p for p in version.glob("events.out.tfevents.*") if p != first_events]
    assert later and min(s for p in later for s in _train_steps(p)) > max(_train_steps(first_events))
    assert json.loads((seed1 / "run.json").read_text())["attempts"] == 2
    seed0 = (tmp_path / "par" / "tiny" / "root" / "seed0" / "job.log").read_text()
    assert "resuming" not in seed0 and "=== exit status 0" in seed0


def _same(a: dict, b: dict) -> bool:
    """Every number of two results.json tables equal to 1e-6 relative."""
    assert a.keys() == b.keys()
    for key in a:
        for variant in a[key]:
            for metric, (mean, std, n) in a[key][variant].items():
                other = b[key][variant][metric]
                assert n == other[2] and mean == pytest.approx(other[0], rel=1e-6) and std == pytest.approx(other[1], rel=1e-6, abs=1e-9)
    return True


# -- dependency waves and failures, with a stand-in launcher ------------------------------------------------


def _coarse_fine(tmp_path: Path):
    spec = {"title": "t", "question": "q?", "configs": ["base.yaml"],
            "variants": [{"name": "coarse", "configs": ["a.yaml"]}, {"name": "joint", "configs": ["a.yaml"]},
                         {"name": "fine", "configs": ["a.yaml"], "args": {"model.net.coarse_weights": "{ckpt:coarse}"}},
                         {"name": "finer", "configs": ["a.yaml"], "args": {"model.net.coarse_weights": "{ckpt:fine}"}}],
            "scales": {"small": {"seeds": [0, 1]}}}
    return load_experiment(write_spec(tmp_path / "cf", spec, {"a.yaml": "{}", "base.yaml": "{}"}))


def test_runs_go_in_dependency_waves_a_failure_blocks_its_dependents_only_and_finished_runs_are_reused(tmp_path, monkeypatch):
    from depthlab.experiments import fanout
    from depthlab.experiments.runner import RunRecord, fingerprint, run_dir

    exp = _coarse_fine(tmp_path)
    assert [[v.name for v in wave] for wave in fanout.waves(list(exp.variants))] == [["coarse", "joint"], ["fine"], ["finer"]]
    out = tmp_path / "runs"
    joint1 = run_dir(out, "small", "joint", 1)
    joint1.mkdir(parents=True)
    RunRecord("joint", 1, "small", [], 1.0, fingerprint=fingerprint(exp, exp.variant("joint"), "small", None)).save(joint1)
    launched: list[list[str]] = []

    def fake_launch(jobs, options, folder, *, name, log):
        launched.append([job.name for job in jobs])
        return [Outcome(job, 1 if job.name.endswith("coarse seed 0") else 0, "") for job in jobs]

    monkeypatch.setattr(fanout, "launch", fake_launch)
    failures = fanout.fan_out(exp, "small", [0, 1], out, LaunchOptions("local", 2), run_command=no_commands, log=lambda m: None)
    assert launched == [["cf: coarse seed 0", "cf: coarse seed 1", "cf: joint seed 0"],  # joint seed 1 reused
                        ["cf: fine seed 1"], ["cf: finer seed 1"]]
    assert failures == [
        f"experiment cf: coarse seed 0 failed (exit status 1): log {run_dir(out.resolve(), 'small', 'coarse', 0) / 'job.log'}",
        "experiment cf: fine seed 0: not started, it starts from coarse seed 0, which failed",
        "experiment cf: finer seed 0: not started, it starts from fine seed 0, which failed"]


def test_a_job_is_the_runs_own_command_line(tmp_path):
    from depthlab.experiments.fanout import run_job

    exp = _coarse_fine(tmp_path)
    job = run_job(exp, exp.variant("fine"), "small", 1, tmp_path / "runs")
    assert job.argv == ["experiment", "run", str(exp.folder), "--scale", "small", "--seeds", "1", "--variant", "fine",
                        "--out", str(tmp_path / "runs"), "--runs-only"]
    assert job.command() == [sys.executable, "-m", "depthlab.cli", *job.argv]
    assert job.log == str(tmp_path / "runs" / "small" / "fine" / "seed1" / "job.log")
    assert pickle.loads(pickle.dumps(job)) == job


@pytest.mark.slow
def test_local_launcher_runs_all_jobs_and_names_the_failed_ones(tmp_path, monkeypatch):
    from depthlab import launch

    def command(self):  # a stand-in for `python -m depthlab.cli ...`: prints, exits with the status in argv
        return [sys.executable, "-c", f"import sys; print('job {self.name} says hi'); sys.exit({self.argv[0]})"]

    monkeypatch.setattr(Job, "command", command)
    jobs = [Job(f"j{i}", [str(status)], str(tmp_path / f"j{i}" / "job.log")) for i, status in enumerate([0, 3, 0])]
    messages: list[str] = []
    outcomes = launch.launch(jobs, LaunchOptions("local", 2), tmp_path, log=messages.append)
    assert [o.status for o in outcomes] == [0, 3, 0] and [o.ok for o in outcomes] == [True, False, True]
    assert f"launch: j1: failed, exit status 3 (log {jobs[1].log})" in messages
    log = Path(jobs[1].log).read_text().splitlines()
    assert log[0].startswith("=== ") and log[0].endswith(": depthlab 3") and log[1:] == ["job j1 says hi", "=== exit status 3"]


@pytest.mark.slow
def test_a_requeued_slurm_task_stops_its_command_first(tmp_path, monkeypatch):
    """submitit calls Job.checkpoint at the time limit: the command gets SIGTERM (a depthlab run saves
    last.ckpt and exits 143), the task waits for it and is requeued with the same job."""
    pytest.importorskip("submitit")
    import threading
    import time

    saved = tmp_path / "saved"
    script = (f"import signal, sys, time\n"
              f"def stop(*_):\n    open({str(saved)!r}, 'w').write('last.ckpt'); sys.exit(143)\n"
              f"signal.signal(signal.SIGTERM, stop); print('training', flush=True); time.sleep(60)")
    monkeypatch.setattr(Job, "command", lambda self: [sys.executable, "-c", script])
    job = Job("j", ["fit"], str(tmp_path / "job.log"))
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(job.run()))
    thread.start()
    while "training" not in (Path(job.log).read_text() if Path(job.log).exists() else ""):
        time.sleep(0.05)
    requeued = job.checkpoint()
    thread.join(10)
    assert saved.read_text() == "last.ckpt" and status == [143]
    assert requeued.function is job and requeued.args == () and pickle.loads(pickle.dumps(requeued.function)) == job


# -- SLURM: the sbatch text of the array (no cluster here) --------------------------------------------------


def _fake_slurm(tmp_path: Path, monkeypatch) -> Path:
    """``srun`` and ``sbatch`` stand-ins on PATH: sbatch keeps the script it is given and answers as SLURM does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\ncp \"$1\" {tmp_path}/submitted.sh\necho 'Submitted batch job 4242'\n")
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return tmp_path / "submitted.sh"


@pytest.mark.slow
def test_the_slurm_array_is_one_sbatch_with_the_options_and_each_task_runs_its_job(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    import argparse

    from depthlab.experiments.fanout import run_job
    from depthlab.launch import add_arguments, options_from, submit_array

    submitted = _fake_slurm(tmp_path, monkeypatch)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = options_from(parser.parse_args(
        ["--launcher", "slurm", "--slurm.partition", "gpu", "--slurm.gpus_per_node", "2", "--slurm.timeout_min", "90",
         "--slurm.cpus_per_task", "8", "--slurm.setup", "source .venv/bin/activate", "--slurm.additional", "reservation=mine", "--slurm.additional", "requeue"]))
    exp = _coarse_fine(tmp_path)
    jobs = [run_job(exp, exp.variant(v), "small", s, tmp_path / "runs") for v in ("coarse", "joint") for s in (0, 1)]
    handles = submit_array(jobs, options.slurm, tmp_path / "submitit", "cf")
    assert [h.job_id for h in handles] == [f"4242_{i}" for i in range(4)]
    text = submitted.read_text()
    sbatch = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in text.splitlines() if line.startswith("#SBATCH --") and "=" in line}
    assert sbatch["#SBATCH --partition"] == "gpu" and sbatch["#SBATCH --gpus-per-node"] == "2"
    assert sbatch["#SBATCH --time"] == "90" and sbatch["#SBATCH --cpus-per-task"] == "8"
    assert sbatch["#SBATCH --array"] == "0-3%4" and sbatch["#SBATCH --ntasks-per-node"] == "1"
    assert sbatch["#SBATCH --signal"] == "USR2@120" and sbatch["#SBATCH --job-name"] == "cf"
    assert sbatch["#SBATCH --reservation"] == "mine" and "\n#SBATCH --requeue\n" in text
    assert "\nsource .venv/bin/activate\n" in text
    command = text.strip().splitlines()[-1]
    assert command.startswith("srun --unbuffered --output ") and command.endswith(
        f"{sys.executable} -u -m submitit.core._submit {tmp_path / 'submitit' / '%j'}")
    for handle, job in zip(handles, jobs):  # what each array task unpickles and calls
        with open(handle.paths.submitted_pickle, "rb") as f:
            delayed = pickle.load(f)
        assert delayed.function == job and delayed.function.argv[-1] == "--runs-only"
        assert delayed.function.stop_wait_s == 90  # signal_delay_s 120 - 30: time left for the requeue


def test_slurm_outcomes_name_the_failed_task_and_its_logs(tmp_path):
    from depthlab.launch import wait_array

    class Handle:
        def __init__(self, job_id, error):
            self.job_id, self.error = job_id, error
            self.paths = type("Paths", (), {"stderr": Path(f"/s/{job_id}_0_log.err")})()

        def done(self):
            return True

        def exception(self):
            return self.error

    jobs = [Job("a", [], "/runs/a/job.log"), Job("b", [], "/runs/b/job.log")]
    messages: list[str] = []
    outcomes = wait_array(jobs, [Handle("7_0", None), Handle("7_1", RuntimeError("Traceback\nJobFailed: b: exit status 1"))],
                          "7", messages.append)
    assert [o.ok for o in outcomes] == [True, False]
    assert outcomes[1].detail == "SLURM job 7_1: JobFailed: b: exit status 1; task log /s/7_1_0_log.err"
    assert messages[-1] == f"launch: b: failed ({outcomes[1].detail}; log /runs/b/job.log)"


def test_launcher_options_are_checked_once_with_one_line_errors(tmp_path, monkeypatch):
    import argparse

    from depthlab.launch import add_arguments, options_from, parse_shard, slurm_executor, strip_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert options_from(parser.parse_args([])) == LaunchOptions()
    assert options_from(parser.parse_args(["--launcher", "local", "--jobs", "3"])) == LaunchOptions("local", 3)
    for argv, message in ((["--jobs", "2"], "--jobs: only with --launcher local (got --launcher sequential)"),
                          (["--launcher", "local", "--jobs", "0"], "--jobs: expected a number of jobs >= 1, got 0"),
                          (["--launcher", "local", "--slurm.partition", "gpu"], "--slurm.partition: only with --launcher slurm"),
                          (["--launcher", "slurm", "--slurm.timeout_min", "0"], "--slurm.timeout_min: expected a number >= 1"),
                          (["--launcher", "slurm", "--slurm.additional", "=x"], "--slurm.additional: expected KEY=VALUE or KEY")):
        with pytest.raises(ConfigError, match="^" + re.escape(message)):
            options_from(parser.parse_args(argv))
    assert strip_arguments(["precompute", "--config", "x.yaml", "--launcher", "slurm", "--shards=4", "--slurm.partition",
                            "gpu", "--workers", "2", "--slurm.setup=a b"]) == ["precompute", "--config", "x.yaml", "--workers", "2"]
    assert parse_shard("0/1") == (0, 1) and parse_shard("3/4") == (3, 4)
    for bad in ("3/2", "a/b", "1", "-1/2", "2/0"):
        with pytest.raises(ConfigError, match=r"^--shard: expected I/N with 0 <= I < N .*got '" + bad + "'$"):
            parse_shard(bad)

    monkeypatch.setitem(sys.modules, "submitit", None)  # not installed
    with pytest.raises(ConfigError, match=r"^--launcher slurm needs submitit: pip install 'depthlab\[cluster\]'$"):
        slurm_executor(SlurmOptions(), tmp_path, "x")
    monkeypatch.delitem(sys.modules, "submitit")
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun: not a SLURM machine
    with pytest.raises(ConfigError, match=r"^--launcher slurm: .*srun.* \(submit from a machine of the SLURM cluster\)$"):
        slurm_executor(SlurmOptions(), tmp_path, "x")


def test_the_experiment_command_refuses_launcher_options_before_any_run(tmp_path, monkeypatch, capsys):
    from depthlab.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["experiment", "run", "toy_root_mae", "--scale", "tiny", "--jobs", "2"]) == 2
    assert capsys.readouterr().err == "depthlab: error: --jobs: only with --launcher local (got --launcher sequential)\n"
    assert main(["experiment", "run", "toy_root_mae", "--launcher", "local", "--runs-only"]) == 2
    assert "--runs-only: runs in this process" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# -- the report of what has finished ------------------------------------------------------------------------


def test_report_writes_what_has_finished_and_lists_what_is_missing(tmp_path, capsys):
    """Two toy variants (no training), seeds 0-2; only seed 0 has run, seed 1 of one variant stopped."""
    from depthlab.experiments import main
    from depthlab.experiments.report import collect
    from depthlab.experiments.runner import ExperimentError

    spec = {"title": "t", "question": "q?", "kind": "script", "script": "depthlab.experiments.toy:run",
            "variants": [{"name": "mae", "args": {"loss": "mae", "steps": 3}},
                         {"name": "root", "args": {"loss": "root_mae", "steps": 3}}],
            "scales": {"small": {"seeds": [0, 1, 2]}}, "metrics": ["final_error"]}
    folder, out = write_spec(tmp_path / "toy", spec), tmp_path / "runs"
    report = ["report", str(folder), "--out", str(out), "--docs", str(tmp_path / "docs")]
    with pytest.raises(ExperimentError, match="no run has finished at scale small"):
        main(report, no_commands)
    assert main(["run", str(folder), "--seeds", "0", "--out", str(out)], no_commands) == 0
    (out / "small" / "mae" / "seed1").mkdir()
    capsys.readouterr()
    assert main(report, no_commands) == 0
    expected = ["mae seed 1: unfinished or failed", "mae seed 2: not started", "root seed 1: not started",
                "root seed 2: not started"]
    assert capsys.readouterr().out.splitlines()[1:] == [
        "depthlab experiment: partial report: 4 of 6 runs have not finished:", *[f"  {m}" for m in expected]]
    text = (tmp_path / "docs" / "toy.md").read_text()
    assert "**Partial report** (`depthlab experiment report`): 4 of 6 runs have not finished" in text
    assert all(f"- {m}" in text for m in expected)
    numbers = json.loads((tmp_path / "docs" / "toy" / "results.json").read_text())
    assert numbers["missing"] == expected
    assert numbers["tables"]["final"]["mae"]["final_error"][2] == 1  # the one finished seed
    with pytest.raises(ExperimentError, match="mae seed 1 has not run"):  # `run` still needs them all
        collect(load_experiment(folder), "small", [0, 1], out)
