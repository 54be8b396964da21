"""Experiments: one command per question of the field, repeatable, with a report and plots.

    depthlab experiment list
    depthlab experiment run NAME [--scale small|full|tiny] [--seeds 0,1,2] [--rerun] [--update-docs]
    depthlab experiment run NAME --launcher local --jobs 2               # two runs at once on this machine
    depthlab experiment run NAME --launcher slurm --slurm.partition P --slurm.gpus_per_node 1 --slurm.timeout_min 600
    depthlab experiment report NAME [--scale small] [--update-docs]   # re-draw the report from existing logs

An experiment is a folder ``configs/experiments/<name>/`` of ordinary depthlab configs plus
``experiment.yaml`` (:mod:`depthlab.experiments.spec`). ``run`` trains every variant and seed with
``depthlab fit`` and evaluates it with ``depthlab test`` (:mod:`depthlab.experiments.runner`), then
writes the report with its plots from the runs' logs (:mod:`depthlab.experiments.report`): beside
the runs, ``<out>/<scale>/report/<name>.md``, unless ``--docs DIR`` or ``--update-docs`` (the
committed ``docs/experiments/<name>.md`` of a clone) says otherwise. The plots need the optional
extra ``plots`` (matplotlib).

``--launcher local|slurm`` runs every (variant, seed) as a job of its own, ``--jobs N`` at once or as
a SLURM job array through submitit (:mod:`depthlab.experiments.fanout`, :mod:`depthlab.launch`); the
report is written when all have finished. ``report`` writes it from the runs that have finished and
lists the missing ones.

:func:`main` takes the command runner as an argument (``run_command(argv) -> exit status``: the
``depthlab experiment`` front end passes :func:`depthlab.cli.main`); nothing here imports the command
layer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depthlab.errors import ConfigError
from depthlab.experiments.runner import CommandRunner
from depthlab.experiments.spec import Experiment, experiments_dir, list_experiments, load_experiment
from depthlab.launch import add_arguments as add_launch_arguments
from depthlab.launch import options_from

__all__ = ["CommandRunner", "Experiment", "experiments_dir", "list_experiments", "load_experiment", "main"]

DOCS_DIR = Path("docs") / "experiments"  # the committed reports, relative to a clone's root


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds: expected comma-separated integers such as 0,1,2, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds: expected distinct integers such as 0,1,2, got {text!r}")
    return seeds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depthlab experiment",
                                     description="experiments that answer the field's questions, with reports and plots")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the experiments, with their questions")
    for name, text in (("run", "train and evaluate every variant and seed, then write the report"),
                       ("report", "write the report again from the logs of finished runs")):
        p = sub.add_parser(name, help=text, description=f"{text}. The report goes beside the runs "
                           "(<out>/<scale>/report/NAME.md); the committed docs/experiments/ is written only with --update-docs.")
        p.add_argument("name", help="experiment name (see 'depthlab experiment list') or folder")
        p.add_argument("--scale", default="small", help="small (this machine; default), full (papers' settings, GPU), tiny (tests)")
        p.add_argument("--seeds", type=_seeds, default=None, help="comma-separated seeds (default: the scale's)")
        p.add_argument("--out", default=None, help="runs folder (default lightning_logs/experiments/<name>)")
        where = p.add_mutually_exclusive_group()
        where.add_argument("--docs", default=None, metavar="DIR",
                           help="write the report and its plots to DIR (default: <out>/<scale>/report, beside the runs)")
        where.add_argument("--update-docs", action="store_true",
                           help=f"replace the committed report {DOCS_DIR}/NAME.md and its plots (run from the clone's root)")
        if name == "run":
            p.add_argument("--rerun", action="store_true", help="train runs again that finished before (default: reuse them)")
            p.add_argument("--variant", action="append", default=None, help="only this variant (repeatable; no report)")
            p.add_argument("--runs-only", action="store_true",
                           help="only the runs: no prepare steps, no extras, no report (what each job of --launcher runs)")
            add_launch_arguments(p)
    return parser


def _report_dir(args: argparse.Namespace, out: Path) -> Path:
    from depthlab.experiments.runner import default_report_dir

    if args.docs:
        return Path(args.docs)
    if args.update_docs:
        if not DOCS_DIR.is_dir():
            raise ConfigError(f"--update-docs: no {DOCS_DIR}/ in {Path.cwd()} (run it from the root of a depthlab clone)")
        return DOCS_DIR
    return default_report_dir(out, args.scale)


def main(argv: list[str], run_command: CommandRunner) -> int:
    """``depthlab experiment ...``; every depthlab command of a run (fit, test, prepare steps) goes
    through ``run_command(argv) -> exit status``."""
    args = _parser().parse_args(argv)
    if args.command == "list":
        names = list_experiments()
        if not names:
            print(f"no experiments under {experiments_dir()}")
            return 1
        for name in names:
            exp = load_experiment(name)
            question = " ".join(exp.question.split())
            print(f"{name:<18} {exp.title}\n{'':<18} {question[:200]}{'...' if len(question) > 200 else ''}")
        return 0
    from depthlab.experiments.report import collect, write_report
    from depthlab.experiments.runner import default_out, run_experiment

    exp = load_experiment(args.name)
    scale = exp.scale(args.scale)
    seeds = args.seeds or list(scale.seeds)
    out = Path(args.out) if args.out else default_out(exp)
    docs = _report_dir(args, out)
    if args.command == "run":
        options = options_from(args)
        if args.runs_only and options.launcher != "sequential":
            raise ConfigError("--runs-only: runs in this process; it does not go with --launcher local/slurm")
        if options.launcher == "sequential":
            run_experiment(exp, args.scale, seeds, out, run_command=run_command, rerun=args.rerun, variants=args.variant,
                           runs_only=args.runs_only)
        else:
            from depthlab.experiments.fanout import fan_out

            failures = fan_out(exp, args.scale, seeds, out, options, run_command=run_command, rerun=args.rerun,
                               variants=args.variant)
            if failures:
                print(f"depthlab experiment: {len(failures)} run{'s' * (len(failures) != 1)} did not finish "
                      "(the others did; run the same command again to retry them, finished runs are reused; "
                      f"'depthlab experiment report {exp.name} --scale {args.scale}' reports what has finished):",
                      file=sys.stderr)
                for failure in failures:
                    print(f"  {failure}", file=sys.stderr)
                return 1
        if args.variant or args.runs_only:
            return 0
        results = collect(exp, args.scale, seeds, out)
    else:
        results = collect(exp, args.scale, seeds, out, partial=True)
    report = write_report(results, docs)
    print(f"depthlab experiment: report written to {report}")
    if results.missing:
        total = sum(len(r) for r in results.runs.values()) + len(results.missing)
        print(f"depthlab experiment: partial report: {len(results.missing)} of {total} runs have not finished:")
        for missing in results.missing:
            print(f"  {missing}")
    return 0
