"""Fan-out: how depthlab runs a set of independent jobs, each one ordinary ``depthlab`` command line.

    depthlab experiment run NAME --launcher local --jobs 2
    depthlab experiment run NAME --launcher slurm --slurm.partition gpu --slurm.gpus_per_node 1 --slurm.timeout_min 600
    depthlab hints precompute --config X.yaml --launcher slurm --shards 16 --slurm.cpus_per_task 16

Three launchers, chosen with ``--launcher`` (:func:`add_arguments` adds the options, :func:`options_from`
reads them: one parser for every command that fans out):

- ``sequential`` (the default): the command's own loop in this process, as before; :func:`launch` is
  not used.
- ``local``: ``--jobs N`` processes at once on this machine. Each job is its command line run as
  ``python -m depthlab.cli ...`` in a subprocess, its output appended to the job's log file.
- ``slurm``: one SLURM job array through submitit (the extra ``cluster``), one array task per job, at
  most ``--slurm.array_parallelism`` running at once. Each task runs the same subprocess as ``local``
  (inside the allocation; the log file is the job's own, beside its results) and :func:`launch` waits
  for the array, polling SLURM through submitit.

Requeue: submitit asks SLURM to send SIGUSR2 ``--slurm.signal_delay_s`` seconds before the time limit
(and SLURM sends it on preemption); submitit's handler calls :meth:`Job.checkpoint`, which stops the
subprocess as a SIGTERM stops any depthlab run (``last.ckpt`` written at the end of the current
step, docs/training.md), waits for it and has submitit requeue the task, at most
``--slurm.max_requeue`` times for time limits. The requeued task runs the same command line again;
the commands resume by themselves (``experiment run`` from the run's ``last.ckpt``, ``hints
precompute`` skips the pairs it has written).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from depthlab.errors import ConfigError

LAUNCHERS = ("sequential", "local", "slurm")
CLUSTER_HINT = "pip install 'depthlab[cluster]'"
POLL_S = 30.0  # how often a waiting `--launcher slurm` asks SLURM (through submitit) about the array


@dataclass(frozen=True)
class SlurmOptions:
    """The ``--slurm.*`` options: the resources of every task of the array (submitit's names)."""

    partition: str | None = None
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    timeout_min: int = 24 * 60
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: int = 256
    max_requeue: int = 3
    signal_delay_s: int = 120
    setup: tuple[str, ...] = ()
    additional: tuple[tuple[str, str | bool], ...] = ()

    def executor_parameters(self, name: str) -> dict[str, Any]:
        """``submitit.AutoExecutor.update_parameters`` keywords (one task per job, one node)."""
        params: dict[str, Any] = {
            "name": name, "timeout_min": self.timeout_min, "nodes": 1, "tasks_per_node": 1,
            "slurm_array_parallelism": self.array_parallelism, "slurm_signal_delay_s": self.signal_delay_s,
        }
        for key in ("gpus_per_node", "cpus_per_task", "mem_gb"):
            if getattr(self, key) is not None:
                params[key] = getattr(self, key)
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(self, key) is not None:
                params[f"slurm_{key}"] = getattr(self, key)
        if self.setup:
            params["slurm_setup"] = list(self.setup)
        if self.additional:
            params["slurm_additional_parameters"] = dict(self.additional)
        return params


_SLURM_HELP = {
    "partition": "SLURM partition", "gpus_per_node": "GPUs of each task", "cpus_per_task": "CPU cores of each task",
    "mem_gb": "memory of each task in GB", "timeout_min": "time limit of each task in minutes (default 1440)",
    "account": "SLURM account", "qos": "SLURM quality of service", "constraint": "SLURM node constraint",
    "array_parallelism": "tasks of the array running at once (default 256)",
    "max_requeue": "requeues after reaching the time limit (default 3); preemptions do not count",
    "signal_delay_s": "seconds before the time limit at which a task saves and is requeued (default 120)",
    "setup": "a shell line run before each task, e.g. 'source .venv/bin/activate' (repeatable)",
    "additional": "any other sbatch option as KEY=VALUE or KEY, e.g. reservation=mine or requeue (repeatable)",
}


@dataclass(frozen=True)
class LaunchOptions:
    launcher: str = "sequential"
    jobs: int = 1
    slurm: SlurmOptions = field(default_factory=SlurmOptions)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--launcher``, ``--jobs`` and the ``--slurm.*`` options (read back with :func:`options_from`)."""
    group = parser.add_argument_group("fan-out (docs/experiments.md: 'Many runs at once')")
    group.add_argument("--launcher", choices=LAUNCHERS, default="sequential",
                       help="sequential (default: one after another in this process), local (--jobs at once on "
                            f"this machine) or slurm (a job array through submitit: {CLUSTER_HINT})")
    group.add_argument("--jobs", type=int, default=None, help="with --launcher local: jobs at once (default 1)")
    for f in fields(SlurmOptions):
        kind = {"gpus_per_node": int, "cpus_per_task": int, "timeout_min": int, "array_parallelism": int,
                "max_requeue": int, "signal_delay_s": int, "mem_gb": float}.get(f.name, str)
        repeat = f.name in ("setup", "additional")
        group.add_argument(f"--slurm.{f.name}", dest=f"slurm.{f.name}", type=kind, default=None,
                           action="append" if repeat else "store", metavar="X", help=_SLURM_HELP[f.name])


def options_from(args: argparse.Namespace) -> LaunchOptions:
    """The launch options of parsed ``args``; a ``--jobs`` or ``--slurm.*`` option that the chosen
    launcher would ignore, or a bad value, is a :class:`ConfigError` naming the option."""
    launcher = args.launcher
    jobs = args.jobs
    if jobs is not None and launcher != "local":
        raise ConfigError(f"--jobs: only with --launcher local (got --launcher {launcher})")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs: expected a number of jobs >= 1, got {jobs}")
    given = {f.name: getattr(args, f"slurm.{f.name}") for f in fields(SlurmOptions)}
    given = {k: v for k, v in given.items() if v is not None}
    if given and launcher != "slurm":
        raise ConfigError(f"--slurm.{sorted(given)[0]}: only with --launcher slurm (got --launcher {launcher})")
    for key in ("gpus_per_node", "cpus_per_task", "timeout_min", "array_parallelism", "signal_delay_s"):
        if key in given and given[key] < 1:
            raise ConfigError(f"--slurm.{key}: expected a number >= 1, got {given[key]}")
    if given.get("mem_gb", 1) <= 0 or given.get("max_requeue", 0) < 0:
        key = "mem_gb" if given.get("mem_gb", 1) <= 0 else "max_requeue"
        raise ConfigError(f"--slurm.{key}: expected a positive number, got {given[key]}")
    if "setup" in given:
        given["setup"] = tuple(given["setup"])
    if "additional" in given:
        pairs = []
        for item in given["additional"]:
            key, sep, value = item.partition("=")
            if not key.strip():
                raise ConfigError(f"--slurm.additional: expected KEY=VALUE or KEY (an sbatch option), got {item!r}")
            pairs.append((key.strip(), value if sep else True))  # KEY alone: a flag such as --requeue
        given["additional"] = tuple(pairs)
    return LaunchOptions(launcher, jobs or 1, SlurmOptions(**given))


def strip_arguments(argv: Sequence[str]) -> list[str]:
    """``argv`` without the fan-out options (``--launcher``, ``--jobs``, ``--shards``, ``--slurm.*``):
    the command line each job runs."""
    names = ("--launcher", "--jobs", "--shards", "--slurm.")
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in names[:3] or name.startswith(names[3]):
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def parse_shard(text: str, option: str = "--shard") -> tuple[int, int]:
    """``"2/8"`` -> ``(2, 8)``: shard 2 (counted from 0) of 8; anything else is a :class:`ConfigError`."""
    index, sep, count = str(text).partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise ConfigError(f"{option}: expected I/N with 0 <= I < N (shards counted from 0, e.g. 0/4 ... 3/4), got {text!r}")
    return i, n


# --- one job -----------------------------------------------------------------------------------------


class JobFailed(RuntimeError):
    """A job's command exited with a non-zero status (the message names its log)."""


@dataclass
class Job:
    """One depthlab command line (``argv`` without the leading ``depthlab``), run in its own process
    with its output appended to ``log``. Pickles (it is what submitit sends to a SLURM task)."""

    name: str
    argv: list[str]
    log: str
    stop_wait_s: float = 60.0  # at a requeue, how long the stopping command may take to save
    _proc: Any = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "argv": self.argv, "log": self.log, "stop_wait_s": self.stop_wait_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _proc=None)

    def command(self) -> list[str]:
        """The process it runs: this Python's ``depthlab`` command line."""
        return [sys.executable, "-m", "depthlab.cli", *self.argv]

    def shell_line(self) -> str:
        import shlex

        return "depthlab " + " ".join(shlex.quote(a) for a in self.argv)

    def run(self, ignore: Sequence[int] = ()) -> int:
        """Run the command to its end, output appended to :attr:`log`; returns its exit status.
        ``ignore``: signals the process starts with ignored (set here, in the main thread only)."""
        import socket
        import subprocess

        Path(self.log).parent.mkdir(parents=True, exist_ok=True)
        where = f"{socket.gethostname()}" + (f", SLURM job {os.environ['SLURM_JOB_ID']}" if "SLURM_JOB_ID" in os.environ else "")
        main = threading.current_thread() is threading.main_thread()
        with open(self.log, "a") as out:
            out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} on {where}: {self.shell_line()}\n")
            out.flush()
            previous = {s: signal.signal(s, signal.SIG_IGN) for s in ignore} if main else {}
            try:  # an ignored signal stays ignored in the child (POSIX exec); the handlers here come back at once
                self._proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)
            while (status := self._proc.poll()) is None:  # not wait(): checkpoint() may reap it from a signal handler
                time.sleep(0.2)
            out.write(f"=== exit status {status}\n")
        return status

    def __call__(self) -> None:
        """Inside a SLURM task (submitit): run, and fail the task when the command fails."""
        status = self.run(ignore=[_requeue_signal()])
        if status != 0:
            raise JobFailed(f"{self.name}: exit status {status}; log {self.log}")

    def checkpoint(self) -> Any:
        """submitit's hook at the time limit or a preemption (its signal handler, in the main thread):
        stop the command as SIGTERM stops a depthlab run (at the end of a step, ``last.ckpt``
        written), wait for it, and requeue this same job."""
        import submitit

        proc, deadline = self._proc, time.monotonic() + self.stop_wait_s
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            while time.monotonic() < deadline:  # os.waitpid: Popen's own wait may hold its lock in the interrupted frame
                try:
                    pid, status = os.waitpid(proc.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    break
                time.sleep(0.5)
        return submitit.helpers.DelayedSubmission(self)


def _requeue_signal() -> int:
    """The signal submitit's tasks are warned with (``SUBMITIT_PREEMPT_SIGNAL``, default USR2): the
    command must not die of it; the task's handler stops the command instead."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return getattr(signal, f"SIG{name}", signal.SIGUSR2)


@dataclass(frozen=True)
class Outcome:
    job: Job
    status: int | None  # the exit status; None when it did not run or SLURM gave none
    detail: str = ""  # why it failed, for the message

    @property
    def ok(self) -> bool:
        return self.status == 0


# --- many jobs ---------------------------------------------------------------------------------------


def launch(jobs: Sequence[Job], options: LaunchOptions, folder: str | Path, *, name: str = "depthlab",
           log: Callable[[str], None] = print) -> list[Outcome]:
    """Run ``jobs`` with the ``local`` or ``slurm`` launcher and wait for all of them; one
    :class:`Outcome` per job, in order. A failed job does not stop the others. ``folder``: where
    submitit keeps its files and the tasks' own logs (``slurm``)."""
    if not jobs:
        return []
    if options.launcher == "local":
        return _launch_local(list(jobs), options.jobs, log)
    if options.launcher == "slurm":
        return _launch_slurm(list(jobs), options.slurm, Path(folder), name, log)
    raise ValueError(f"launch: {options.launcher!r} is the caller's own loop, not a launcher of jobs")


def _launch_local(jobs: list[Job], at_once: int, log: Callable[[str], None]) -> list[Outcome]:
    from concurrent.futures import ThreadPoolExecutor

    stop = threading.Event()

    def run(job: Job) -> Outcome:
        if stop.is_set():
            return Outcome(job, None, "not started (interrupted)")
        log(f"launch: started {job.name} (log {job.log})")
        status = job.run()
        log(f"launch: {job.name}: " + ("finished" if status == 0 else f"failed, exit status {status} (log {job.log})"))
        return Outcome(job, status, "" if status == 0 else f"exit status {status}")

    pool = ThreadPoolExecutor(max_workers=min(at_once, len(jobs)), thread_name_prefix="depthlab-job")
    futures = [pool.submit(run, job) for job in jobs]
    try:
        return [f.result() for f in futures]
    except KeyboardInterrupt:
        # Ctrl+C reached the jobs too (one process group): they stop at the end of a step and save.
        stop.set()
        log("launch: interrupted: the running jobs stop after their current step (last.ckpt saved); "
            "no new job starts")
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def slurm_executor(options: SlurmOptions, folder: Path, name: str) -> Any:
    """A submitit executor for SLURM with ``options``; without submitit or SLURM a one-line
    :class:`ConfigError`."""
    try:
        import submitit
    except ImportError:
        raise ConfigError(f"--launcher slurm needs submitit: {CLUSTER_HINT}") from None
    try:
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm",
                                         slurm_max_num_timeout=options.max_requeue)
    except RuntimeError as exc:  # no srun on this machine
        raise ConfigError(f"--launcher slurm: {exc} (submit from a machine of the SLURM cluster)") from None
    executor.update_parameters(**options.executor_parameters(name))
    return executor


def submit_array(jobs: Sequence[Job], options: SlurmOptions, folder: Path, name: str) -> list[Any]:
    """Submit ``jobs`` as one SLURM job array (submitit's ``batch()``: one ``sbatch --array``); returns
    submitit's job handles, in order."""
    executor = slurm_executor(options, folder, name)
    for job in jobs:  # leave submitit time to requeue after the command has saved
        job.stop_wait_s = max(10.0, options.signal_delay_s - 30.0)
    with executor.batch():
        return [executor.submit(job) for job in jobs]


def _launch_slurm(jobs: list[Job], options: SlurmOptions, folder: Path, name: str,
                  log: Callable[[str], None]) -> list[Outcome]:
    handles = submit_array(jobs, options, folder, name)
    array = str(handles[0].job_id).split("_")[0]
    log(f"launch: submitted SLURM job array {array} ({len(jobs)} tasks, at most {options.array_parallelism} at "
        f"once); submitit's files in {folder}; each job's own log beside its results")
    return wait_array(jobs, handles, array, log)


def wait_array(jobs: list[Job], handles: list[Any], array: str, log: Callable[[str], None]) -> list[Outcome]:
    """Poll submitit's ``handles`` (every :data:`POLL_S` s) until all have finished; one outcome per job."""
    outcomes: dict[int, Outcome] = {}
    try:
        while len(outcomes) < len(handles):
            for i, handle in enumerate(handles):
                if i in outcomes or not handle.done():
                    continue
                error = handle.exception()
                if error is None:
                    outcomes[i] = Outcome(jobs[i], 0)
                    log(f"launch: {jobs[i].name}: finished (SLURM job {handle.job_id})")
                else:
                    last = [line for line in str(error).splitlines() if line.strip()]
                    detail = f"SLURM job {handle.job_id}: {last[-1] if last else type(error).__name__}; task log {handle.paths.stderr}"
                    outcomes[i] = Outcome(jobs[i], None, detail)
                    log(f"launch: {jobs[i].name}: failed ({detail}; log {jobs[i].log})")
            if len(outcomes) < len(handles):
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        log(f"launch: stopped waiting; the array keeps running (scancel {array} stops it)")
        raise
    return [outcomes[i] for i in range(len(handles))]
