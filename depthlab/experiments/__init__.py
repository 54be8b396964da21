"""Experiments: one command per question of the field, repeatable, with a report and plots.

    depthlab experiment list
    depthlab experiment run NAME [--scale small|full] [--seeds 0,1,2] [--rerun]
    depthlab experiment report NAME [--scale small]     # re-draw the report from existing logs

An experiment is a folder ``configs/experiments/<name>/`` of ordinary depthlab configs plus
``experiment.yaml`` (:mod:`depthlab.experiments.spec`). ``run`` trains every variant and seed with
``depthlab fit`` and evaluates it with ``depthlab test`` (:mod:`depthlab.experiments.runner`), then
writes ``docs/experiments/<name>.md`` with its plots from the runs' logs
(:mod:`depthlab.experiments.report`). The plots need the optional extra ``plots`` (matplotlib).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depthlab.errors import ConfigError
from depthlab.experiments.spec import Experiment, experiments_dir, list_experiments, load_experiment

__all__ = ["Experiment", "experiments_dir", "list_experiments", "load_experiment", "main"]


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
        p = sub.add_parser(name, help=text)
        p.add_argument("name", help="experiment name (see 'depthlab experiment list') or folder")
        p.add_argument("--scale", default="small", help="small (this machine; default), full (papers' settings, GPU), tiny (tests)")
        p.add_argument("--seeds", type=_seeds, default=None, help="comma-separated seeds (default: the scale's)")
        p.add_argument("--out", default=None, help="runs folder (default lightning_logs/experiments/<name>)")
        p.add_argument("--docs", default="docs/experiments", help="where the report and plots go (default docs/experiments)")
        if name == "run":
            p.add_argument("--rerun", action="store_true", help="train runs again that finished before (default: reuse them)")
            p.add_argument("--variant", action="append", default=None, help="only this variant (repeatable; no report)")
    return parser


def main(argv: list[str]) -> int:
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
    if args.command == "run":
        run_experiment(exp, args.scale, seeds, out, rerun=args.rerun, variants=args.variant)
        if args.variant:
            return 0
    report = write_report(collect(exp, args.scale, seeds, out), args.docs)
    print(f"depthlab experiment: report written to {report}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ConfigError as exc:
        print(f"depthlab experiment: error: {exc}", file=sys.stderr)
        sys.exit(2)
