"""``depthlab hints precompute``: the front end of :func:`depthlab.hints.precompute.precompute`."""

from __future__ import annotations

import argparse

from depthlab.errors import ConfigError
from depthlab.hints.precompute import SPLITS, precompute
from depthlab.hints.sgm import PUBLISHED_GRID, random_settings


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
    return parser


def main(argv: list[str]) -> int:
    """Depth Hints: 'depthlab hints precompute --config X.yaml' computes the SGM proxy labels"""
    from depthlab.parser import datamodule_from_config

    args, rest = _parser().parse_known_args(argv)
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
    summary = precompute(datamodule, hints_root, args.split, args.workers, settings, args.size, choice, args.limit,
                         progress=not args.no_progress)
    return 1 if summary.failures else 0
