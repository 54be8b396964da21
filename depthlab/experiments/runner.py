"""Run an experiment's variants and seeds through the ordinary ``depthlab fit`` / ``depthlab test``.

Each run is exactly the command line that the report prints (``depthlab fit --config ...
--seed_everything S``), executed by the command runner the caller passes (``run_command(argv) -> exit
status``; the ``depthlab experiment`` front end passes :func:`depthlab.cli.main`, so the runs go
through the ordinary ``fit``/``test`` in this process): there is no second training loop, and this
package does not import the command layer. Runs land in ``<out>/<scale>/<variant>/seed<S>/`` (fit
logs and checkpoints) and ``.../eval/<evaluation>/`` (test logs); a finished run leaves ``run.json``
and is reused by a later ``run`` (``--rerun`` trains it again), so an interrupted experiment resumes
where it stopped and ``depthlab experiment report`` re-draws a report from the logs alone.

An attempt that stopped part-way (a signal, a preempted or requeued job, a crash) leaves
``run.pending.json`` (its fingerprint) and its ``last.ckpt``: the next attempt with the same
fingerprint continues it with ``--ckpt_path last`` (:mod:`depthlab.checkpointing.resume`: the same
version folder, weights, optimizer, schedule, RNG states and data order); any other attempt starts
clean. A job of ``--launcher local/slurm`` (:mod:`depthlab.experiments.fanout`) appends its output
to ``job.log`` in the run folder, which a clean start keeps.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from depthlab.errors import ConfigError
from depthlab.experiments.spec import Experiment, Variant, resolve_callable

RUN_FILE = "run.json"
PENDING_FILE = "run.pending.json"  # an unfinished attempt: its fingerprint and the time it has spent
JOB_LOG = "job.log"  # the output of a --launcher local/slurm job (kept by a clean start)

CommandRunner = Callable[[list[str]], int]
"""Runs one depthlab command line (``["fit", "--config", ...]``) and returns its exit status."""


class ExperimentError(ConfigError):
    """A run of an experiment failed (the message names the variant, the seed and the command)."""


def cli_args(args: dict[str, Any]) -> list[str]:
    """``{"model.lr": 0.01, "model.eval_protocol": {...}}`` -> ``["--model.lr", "0.01", ...]``."""
    out = []
    for key, value in args.items():
        if isinstance(value, (dict, list)):
            text = json.dumps(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif value is None:
            text = "null"
        else:
            text = str(value)
        out += [f"--{key}", text]
    return out


def shell_line(args: list[str]) -> str:
    import shlex

    return "depthlab " + " ".join(shlex.quote(a) for a in args)


@dataclass
class RunRecord:
    """What ``run.json`` holds for one (variant, seed)."""

    variant: str
    seed: int
    scale: str
    command: list[str]
    wall_s: float
    evaluations: dict[str, list[str]] = field(default_factory=dict)
    eval_wall_s: float = 0.0
    fingerprint: str = ""
    attempts: int = 1  # fit attempts: more than one when it was resumed from its last.ckpt

    def save(self, folder: Path) -> None:
        (folder / RUN_FILE).write_text(json.dumps(self.__dict__, indent=1))

    @classmethod
    def load(cls, folder: Path) -> "RunRecord | None":
        path = folder / RUN_FILE
        return cls(**json.loads(path.read_text())) if path.is_file() else None


def run_dir(out: Path, scale: str, variant: str, seed: int) -> Path:
    return out / scale / variant / f"seed{seed}"


def last_checkpoint(folder: Path) -> Path:
    found = sorted(folder.glob("*/version_*/checkpoints/last.ckpt"))
    if not found:
        raise ExperimentError(f"{folder}: the fit run wrote no last.ckpt")
    return found[-1]


def _call(run_command: CommandRunner, args: list[str], what: str) -> None:
    import warnings

    with warnings.catch_warnings():  # `args` is the whole command line here, not an addition to sys.argv
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        rc = run_command(args)
    if rc != 0:
        raise ExperimentError(f"{what} failed (exit status {rc}): {shell_line(args)}")


def _substitute(value: Any, ckpts: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, path in ckpts.items():
            value = value.replace(f"{{ckpt:{name}}}", path)
        return value
    if isinstance(value, dict):
        return {k: _substitute(v, ckpts) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, ckpts) for v in value]
    return value


def run_configs(exp: Experiment, variant: Variant, scale: str) -> list[str]:
    """The config files of one run, in order (relative to the experiment's folder)."""
    return [*exp.configs, *variant.configs, *exp.scale(scale).configs]


def config_args(exp: Experiment, relative: list[str]) -> list[str]:
    return [a for rel in relative for a in ("--config", str(exp.config_path(rel)))]


def run_settings(exp: Experiment, variant: Variant, scale: str, extra_args: dict[str, Any] | None = None) -> dict[str, Any]:
    """The variant's args, then the scale's (and its per-variant ones), then the caller's."""
    return {**variant.args, **exp.scale(scale).args_for(variant.name), **(extra_args or {})}


def shared_args(exp: Experiment, scale: str, extra_args: dict[str, Any] | None = None) -> list[str]:
    """What every run of the experiment reads about its data: the shared configs and the ``data.*`` settings
    (for the ``prepare`` commands, which build the data module without a variant)."""
    data = {k: v for k, v in {**exp.scale(scale).args, **(extra_args or {})}.items() if k.startswith("data.")}
    return [*config_args(exp, [*exp.configs, *exp.scale(scale).configs]), *cli_args(data)]


def run_args(exp: Experiment, variant: Variant, scale: str, ckpts: dict[str, str],
             extra_args: dict[str, Any] | None = None) -> list[str]:
    """A run's ``--config`` files and settings, shared by its fit and its test commands."""
    return [*config_args(exp, run_configs(exp, variant, scale)),
            *cli_args(_substitute(run_settings(exp, variant, scale, extra_args), ckpts))]


def fit_command(exp: Experiment, variant: Variant, scale: str, seed: int, folder: Path,
                ckpts: dict[str, str], extra_args: dict[str, Any] | None = None) -> list[str]:
    return ["fit", *run_args(exp, variant, scale, ckpts, extra_args),
            "--seed_everything", str(seed), "--trainer.default_root_dir", str(folder)]


def fingerprint(exp: Experiment, variant: Variant, scale: str, extra_args: dict[str, Any] | None) -> str:
    """What decides a run's result: its settings and the text of every config file it reads."""
    import hashlib

    spec = exp.scale(scale)
    files = run_configs(exp, variant, scale) if exp.kind == "fit" else []
    parts = [json.dumps([exp.kind, exp.script, variant.args, spec.args_for(variant.name), extra_args or {},
                         [e.__dict__ for e in exp.evaluations]], sort_keys=True, default=str)]
    parts += [exp.config_path(rel).read_text() for rel in files]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def run_variant(exp: Experiment, variant: Variant, scale: str, seed: int, out: Path, *, run_command: CommandRunner,
                rerun: bool = False, extra_args: dict[str, Any] | None = None,
                log: Callable[[str], None] = print) -> RunRecord:
    """Train (or reuse) one (variant, seed) with ``run_command`` and run its evaluations.

    A finished run is reused unless ``rerun`` or its configs or settings changed since (then it is
    trained again, with a message)."""
    folder = run_dir(out, scale, variant.name, seed)
    record = RunRecord.load(folder)
    stamp = fingerprint(exp, variant, scale, extra_args)
    if record is not None and not rerun:
        if record.fingerprint == stamp:
            log(f"experiment {exp.name}: {variant.name} seed {seed}: done before ({folder}), reused")
            return record
        log(f"experiment {exp.name}: {variant.name} seed {seed}: its configs or settings changed since {folder} ran; training again")
    pending = _pending(folder, stamp) if not rerun and exp.kind == "fit" else None
    if pending is None:
        _start_clean(folder)  # an unfinished attempt with other settings, or a re-run
        pending = {"fingerprint": stamp, "wall_s": 0.0, "attempts": 0}
    else:
        log(f"experiment {exp.name}: {variant.name} seed {seed}: an unfinished attempt with these settings left "
            f"{pending['last']}: resuming it (--ckpt_path last)")
    pending["attempts"] += 1
    ckpts = {dep: str(last_checkpoint(run_dir(out, scale, dep, seed))) for dep in variant.after}
    start = time.perf_counter()
    if exp.kind == "script":
        fn = resolve_callable(exp.script, f"experiment {exp.name}: script")
        settings = _substitute(run_settings(exp, variant, scale, extra_args), ckpts)
        command = ["experiment", "run", exp.name, "--scale", scale, "--seeds", str(seed), "--variant", variant.name]
        log(f"experiment {exp.name}: {variant.name} seed {seed}: {exp.script}({settings})")
        fn(out_dir=folder, seed=seed, **settings)
        record = RunRecord(variant.name, seed, scale, command, time.perf_counter() - start, fingerprint=stamp)
        record.save(folder)
        return record
    args = fit_command(exp, variant, scale, seed, folder, ckpts, extra_args)
    log(f"experiment {exp.name}: {variant.name} seed {seed}: {shell_line(args)}")
    resume = ["--ckpt_path", "last"] if pending["attempts"] > 1 else []
    _save_pending(folder, pending)
    try:
        _call(run_command, args + resume, f"experiment {exp.name}, variant {variant.name}, seed {seed}: fit")
    finally:  # the time a stopped attempt spent counts in the run's wall time
        pending["wall_s"] += time.perf_counter() - start
        _save_pending(folder, pending)
    wall = pending["wall_s"]
    ckpt = last_checkpoint(folder)
    # the command recorded (and shown in the report) is the fit itself, without the resume
    record = RunRecord(variant.name, seed, scale, args, wall, fingerprint=stamp, attempts=pending["attempts"])
    start = time.perf_counter()
    for evaluation in exp.evaluations:
        # the fit's own configs and settings (so the network is stated as trained), then the evaluation's
        test = ["test", *run_args(exp, variant, scale, ckpts, extra_args), *cli_args(_substitute(evaluation.args, ckpts))]
        test += ["--ckpt_path", str(ckpt), "--seed_everything", str(seed),
                 "--trainer.default_root_dir", str(folder / "eval" / evaluation.name)]
        _call(run_command, test, f"experiment {exp.name}, variant {variant.name}, seed {seed}: evaluation {evaluation.name}")
        record.evaluations[evaluation.name] = test
    record.eval_wall_s = time.perf_counter() - start
    record.save(folder)
    (folder / PENDING_FILE).unlink(missing_ok=True)
    return record


def _start_clean(folder: Path) -> None:
    """Empty ``folder`` (created if missing) except a job's log, which goes on across attempts."""
    if folder.exists():
        for path in folder.iterdir():
            if path.name == JOB_LOG:
                continue
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    folder.mkdir(parents=True, exist_ok=True)


def _save_pending(folder: Path, pending: dict[str, Any]) -> None:
    (folder / PENDING_FILE).write_text(json.dumps({k: v for k, v in pending.items() if k != "last"}))


def _pending(folder: Path, stamp: str) -> dict[str, Any] | None:
    """The state of an unfinished attempt of ``folder`` with fingerprint ``stamp`` that left a
    ``last.ckpt`` to resume (with its path under ``"last"``), else None."""
    path = folder / PENDING_FILE
    try:
        pending = json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return None
    if not isinstance(pending, dict) or pending.get("fingerprint") != stamp:
        return None
    found = sorted(folder.glob("*/version_*/checkpoints/last.ckpt"))
    if not found:
        return None
    return {"fingerprint": stamp, "wall_s": float(pending.get("wall_s", 0.0)),
            "attempts": int(pending.get("attempts", 1)), "last": str(found[-1])}


def run_experiment(exp: Experiment, scale: str = "small", seeds: list[int] | None = None, out: str | Path | None = None,
                   *, run_command: CommandRunner, rerun: bool = False, variants: list[str] | None = None,
                   extra_args: dict[str, Any] | None = None, log: Callable[[str], None] = print,
                   runs_only: bool = False) -> list[RunRecord]:
    """Every (variant, seed) of ``exp`` at ``scale`` (the scale's variants in spec order, seeds inner), then
    its extras; each depthlab command (prepare, fit, test) goes through ``run_command``.
    ``runs_only``: no prepare steps and no extras (what one job of a fan-out does)."""
    out = Path(out) if out is not None else default_out(exp)
    seeds = list(seeds) if seeds is not None else list(exp.scale(scale).seeds)
    chosen = [exp.variant(v) for v in variants] if variants else exp.variants_at(scale)
    for step in () if runs_only else exp.prepare_at(scale):
        command = [*step, *shared_args(exp, scale, extra_args)]
        log(f"experiment {exp.name}: prepare: {shell_line(command)}")
        _call(run_command, command, f"experiment {exp.name}: prepare {' '.join(step)}")
    records = []
    for variant in chosen:
        for seed in seeds:
            records.append(run_variant(exp, variant, scale, seed, out, run_command=run_command, rerun=rerun,
                                       extra_args=extra_args, log=log))
    if not runs_only:
        run_extras(exp, scale, out, rerun=rerun)
    return records


def run_extras(exp: Experiment, scale: str, out: Path, *, rerun: bool = False) -> None:
    """The experiment's extras (tables computed once, after the runs); a table written before is kept
    unless ``rerun``."""
    for extra in exp.extras:
        target = out / scale / "extras" / f"{extra.name}.csv"
        if target.is_file() and not rerun:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        fn = resolve_callable(extra.run, f"experiment {exp.name}: extras.{extra.name}")
        fn(target, exp=exp, scale=scale, runs=out / scale, **extra.args)
        (target.with_suffix(".json")).write_text(json.dumps({"wall_s": time.perf_counter() - start}))


def default_out(exp: Experiment) -> Path:
    """Where the runs go unless ``--out`` says otherwise (relative to the working directory)."""
    return Path("lightning_logs") / "experiments" / exp.name


def default_report_dir(out: Path, scale: str) -> Path:
    """Where ``run`` and ``report`` write the report unless told otherwise: beside the scale's runs
    (``<out>/<scale>/report/``), never over the committed ``docs/experiments/``."""
    return out / scale / "report"
