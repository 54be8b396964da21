"""``depthlab hints precompute``: the front end of :func:`depthlab.hints.precompute.precompute`."""

from __future__ import annotations

import argparse

import sys
from pathlib import Path

from depthlab.errors import ConfigError
from depthlab.hints.precompute import SPLITS, default_workers, precompute
from depthlab.hints.sgm import PUBLISHED_GRID, random_settings
from depthlab.launch import Job, LaunchOptions, launch, options_from, parse_shard, strip_arguments
from depthlab.launch import add_arguments as add_launch_arguments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depthlab hints", description="Depth Hints (Watson et al. 2019) tools",
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "precompute", allow_abbrev=False,
        help="compute the hints of every stereo pair of a config's data module (resumable, parallel)",
        description="Compute the fused-SGM Depth Hints of every stereo pair of the config's data module and "
                    "store them under hints_root (docs/hints.md). Other options (--data.*, --model.*, "
                    "--trainer.*) are passed to the config parser of 'depthlab fit'.")
    p.add_argument("--config", action="append", required=True, help="the YAML given to 'depthlab fit' (repeatable)")
    p.add_argument("--hints_root", default=None, help="hints folder (default: the config's data.init_args.hints_root)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--split", action="append", choices=SPLITS, help="only this split (repeatable; default all)")
    p.add_argument("--size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=None,
                   help="match at this size and resize the hints back (default: the image's own size)")
    p.add_argument("--settings", choices=["grid", "random"], default="grid",
                   help="SGM settings: the published 12-setting grid (default) or a random draw")
    p.add_argument("--num_settings", type=int, default=len(PUBLISHED_GRID),
                   help="settings drawn with --settings random")
    p.add_argument("--settings_seed", type=int, default=0, help="seed of --settings random")
    p.add_argument("--limit", type=int, default=None, help="compute at most N pairs in this run")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="only shard I (from 0) of N: the pairs at positions I, I+N, I+2N, ... (any scheduler can run "
                        "the N shards at once into one hints folder)")
    p.add_argument("--shards", type=int, default=None, metavar="N",
                   help="with --launcher local/slurm: run the N shards as N jobs (a SLURM job array)")
    add_launch_arguments(p)
    return parser


def main(argv: list[str]) -> int:
    """Depth Hints: 'depthlab hints precompute --config X.yaml' computes the SGM proxy labels"""
    from depthlab.parser import datamodule_from_config

    args, rest = _parser().parse_known_args(argv)
    options = options_from(args)
    shard = parse_shard(args.shard) if args.shard is not None else None
    if options.launcher == "sequential" and args.shards is not None:
        raise ConfigError("--shards: only with --launcher local or slurm (one shard alone: --shard I/N)")
    if options.launcher != "sequential":
        if shard is not None:
            raise ConfigError(f"--shard: one shard runs in this process; with --launcher {options.launcher} give --shards N")
        if args.shards is None or args.shards < 1:
            got = "" if args.shards is None else f", got {args.shards}"
            raise ConfigError(f"--shards: --launcher {options.launcher} needs --shards N, the number of shards >= 1{got}")
    if args.settings == "random":
        try:
            settings = random_settings(args.num_settings, args.settings_seed)
        except ValueError as exc:
            raise ConfigError(f"--num_settings: {exc}") from None
        choice = f"random (num_settings {args.num_settings}, settings_seed {args.settings_seed})"
    else:
        settings, choice = PUBLISHED_GRID, "grid"
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    cli_args = [arg for path in args.config for arg in ("--config", path)] + rest
    datamodule = datamodule_from_config(cli_args, prog="depthlab hints precompute")
    hints_root = args.hints_root or getattr(datamodule, "hints_root", None)
    if hints_root is None:
        raise ConfigError("no hints folder: set data.init_args.hints_root in the config or give --hints_root")
    if options.launcher != "sequential":
        return _launch_shards(argv, args, options, datamodule, Path(hints_root).expanduser(), settings, choice)
    summary = precompute(datamodule, hints_root, args.split, args.workers, settings, args.size, choice, args.limit,
                         progress=not args.no_progress, shard=shard)
    return 1 if summary.failures else 0


def _launch_shards(argv: list[str], args, options: LaunchOptions, datamodule, root: Path, settings, choice: str) -> int:
    """``--launcher local|slurm --shards N``: the N shards as N jobs of this same command line with
    ``--shard i/N``, logs in ``<hints_root>/logs/``. The manifest is claimed here first, so a folder
    made with other settings is refused before anything is submitted."""
    from depthlab.hints.fusion import check_size
    from depthlab.hints.store import claim_hints_root, make_manifest

    try:
        size = check_size(args.size)
    except ValueError as exc:
        raise ConfigError(f"--size: {exc}") from None
    claim_hints_root(root, make_manifest(settings, size, datamodule.hints_data, datamodule.hint_layout, choice))
    n = args.shards
    base = ["hints", *strip_arguments(argv)]
    if "--no_progress" not in base:
        base.append("--no_progress")
    if options.launcher == "local" and args.workers is None:  # the cores shared by the shards running at once
        base += ["--workers", str(max(1, default_workers() // min(options.jobs, n)))]
    logs = root.resolve() / "logs"
    jobs = [Job(f"hints shard {i}/{n}", [*base, "--shard", f"{i}/{n}"], str(logs / f"shard-{i}-of-{n}.log"))
            for i in range(n)]
    outcomes = launch(jobs, options, logs / "submitit", name="depthlab-hints")
    failed = [o for o in outcomes if not o.ok]
    for outcome in failed:
        print(f"hints precompute: {outcome.job.name} failed ({outcome.detail or f'exit status {outcome.status}'}): "
              f"log {outcome.job.log}", file=sys.stderr)
    if not failed:
        print(f"hints precompute: all {n} shards finished -> {root}")
    return 1 if failed else 0
