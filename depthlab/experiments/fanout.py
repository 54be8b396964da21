"""An experiment's runs as independent jobs: ``depthlab experiment run NAME --launcher local|slurm``.

Each (variant, seed) is one job (:class:`depthlab.launch.Job`) whose command line is::

    depthlab experiment run <experiment folder> --scale S --seeds SEED --variant V --out OUT --runs-only

that is, :func:`~depthlab.experiments.runner.run_variant` in a process of its own: the same ``depthlab
fit``/``depthlab test`` command lines as a sequential run, the same reuse of finished runs
(fingerprints, ``run.json``), and the same resume of an unfinished attempt from its ``last.ckpt``, so
a requeued SLURM task continues where it stopped. Its output goes to ``job.log`` in the run folder.

Order: a variant that starts from another's checkpoint (``{ckpt:NAME}`` in its args) must wait for
it. The runs are scheduled in dependency waves (:func:`waves`): wave 0 is every variant that reads no
other's checkpoint, wave k the variants whose dependencies are all in earlier waves; a wave is
launched (one job array on SLURM) when the previous one has finished. A run whose dependency failed
is not started and is named as such. Runs finished before (same fingerprint) are reused, not
launched. With ``--launcher slurm`` the experiment's ``prepare`` steps (e.g. ``hints precompute``) are
one job before the first wave (log ``<out>/<scale>/prepare.log``); with ``local`` they run in this
process first, as in a sequential run.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from depthlab.experiments.runner import (
    JOB_LOG, CommandRunner, RunRecord, _call, fingerprint, run_dir, run_extras, shared_args, shell_line,
)
from depthlab.experiments.spec import Experiment, Variant
from depthlab.launch import Job, LaunchOptions, launch


def waves(variants: list[Variant]) -> list[list[Variant]]:
    """``variants`` grouped so that each comes in a later group than every variant whose checkpoint it
    reads; in spec order within a group. A dependency outside ``variants`` (a ``--variant`` choice) is
    taken as finished."""
    level: dict[str, int] = {}
    for variant in variants:  # the spec lists a dependency before the variants that read it
        level[variant.name] = 1 + max((level[d] for d in variant.after if d in level), default=-1)
    groups: list[list[Variant]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for variant in variants:
        groups[level[variant.name]].append(variant)
    return groups


def run_job(exp: Experiment, variant: Variant, scale: str, seed: int, out: Path) -> Job:
    """The job of one (variant, seed): ``depthlab experiment run ... --runs-only``, logged in the run folder."""
    out = out.resolve()
    argv = ["experiment", "run", str(exp.folder), "--scale", scale, "--seeds", str(seed), "--variant", variant.name,
            "--out", str(out), "--runs-only"]
    return Job(f"{exp.name}: {variant.name} seed {seed}", argv, str(run_dir(out, scale, variant.name, seed) / JOB_LOG))


def fan_out(exp: Experiment, scale: str, seeds: list[int], out: Path, options: LaunchOptions, *,
            run_command: CommandRunner, rerun: bool = False, variants: list[str] | None = None,
            log: Callable[[str], None] = print) -> list[str]:
    """Run every (variant, seed) of ``exp`` at ``scale`` as jobs of ``options.launcher``, in dependency
    waves, then the extras when all succeeded. Returns one message per run that failed or could not
    start (naming its log); an empty list when all finished."""
    out = Path(out)
    chosen = [exp.variant(v) for v in variants] if variants else exp.variants_at(scale)
    steps = exp.prepare_at(scale)
    if steps and options.launcher == "slurm":
        prepare = [Job(f"{exp.name}: prepare", [*step, *shared_args(exp, scale)],
                       str((out / scale / "prepare.log").resolve())) for step in steps]
        for job in prepare:  # one after another: a later step may read what an earlier one wrote
            (outcome,) = launch([job], options, out / scale / "submitit", name=f"{exp.name}-prepare", log=log)
            if not outcome.ok:
                return [f"experiment {exp.name}: prepare step failed ({outcome.detail or f'exit status {outcome.status}'}): "
                        f"{job.shell_line()}; log {job.log}"]
    else:
        for step in steps:
            command = [*step, *shared_args(exp, scale)]
            log(f"experiment {exp.name}: prepare: {shell_line(command)}")
            _call(run_command, command, f"experiment {exp.name}: prepare {' '.join(step)}")

    failed: set[tuple[str, int]] = set()
    failures: list[str] = []
    for wave in waves(chosen):
        jobs: list[Job] = []
        keys: list[tuple[str, int]] = []
        for variant in wave:
            stamp = fingerprint(exp, variant, scale, None)
            for seed in seeds:
                folder = run_dir(out, scale, variant.name, seed)
                record = RunRecord.load(folder)
                if rerun and folder.exists():
                    shutil.rmtree(folder)  # trained again from the start (the jobs themselves never --rerun)
                elif record is not None and record.fingerprint == stamp:
                    log(f"experiment {exp.name}: {variant.name} seed {seed}: done before ({folder}), reused")
                    continue
                blocked = [d for d in variant.after if (d, seed) in failed]
                if blocked:
                    failed.add((variant.name, seed))
                    failures.append(f"experiment {exp.name}: {variant.name} seed {seed}: not started, it starts from "
                                    f"{blocked[0]} seed {seed}, which failed")
                    continue
                jobs.append(run_job(exp, variant, scale, seed, out))
                keys.append((variant.name, seed))
        if not jobs:
            continue
        log(f"experiment {exp.name}: {len(jobs)} run{'s' * (len(jobs) != 1)} with --launcher {options.launcher}"
            + (f" ({options.jobs} at once)" if options.launcher == "local" else ""))
        for key, outcome in zip(keys, launch(jobs, options, out / scale / "submitit", name=exp.name, log=log)):
            if not outcome.ok:
                failed.add(key)
                detail = outcome.detail or f"exit status {outcome.status}"
                failures.append(f"experiment {exp.name}: {key[0]} seed {key[1]} failed ({detail}): log {outcome.job.log}")
    if not failures:
        run_extras(exp, scale, out, rerun=rerun)
    return failures
