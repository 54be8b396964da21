"""``depthlab data check|stats --config X.yaml``: the data a config trains on, checked and described.

The front end of :func:`depthlab.data.check.check` and :func:`depthlab.data.stats.stats`: builds the
data module from the same YAML that ``depthlab fit`` reads (:func:`depthlab.parser.datamodule_from_config`)
and walks it (each member of a mixture in turn). ``check`` exits with status 1 when anything is wrong,
so it can gate a multi-hour job; ``stats`` prints per split the image sizes, the valid-depth share,
depth percentiles in metres and the intrinsics found::

    depthlab data check --config configs/kitti.yaml --workers 8
    depthlab data stats --config configs/own_data.yaml --limit 200
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from depthlab.errors import ConfigError


def build_datamodule(config_path: str | Path, overrides: list[str] | None = None) -> Any:
    """The data module of a depthlab config, parsed exactly as ``depthlab fit`` parses it
    (``overrides``: ``--data.*`` arguments as on the command line)."""
    from depthlab.parser import datamodule_from_config

    path = Path(config_path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    return datamodule_from_config(["--config", str(path), *(overrides or [])], prog="depthlab data check")


def validate_dataset(config_path: str | Path, splits: list[str] | None = None, workers: int = 0,
                     limit: int | None = None, max_listed: int = 20, out=None,
                     overrides: list[str] | None = None) -> int:
    """``depthlab data check`` as a function: build the config's data module, walk it, print the
    report; returns the number of problems (0 when every sample reads cleanly)."""
    from depthlab.data.check import check
    from depthlab.data.stats import member_modules

    total = 0
    for prefix, module in member_modules(build_datamodule(config_path, overrides)):
        if prefix:
            print(f"member {prefix.rstrip('/')}:", file=out)
        total += check(module, splits, workers, limit, max_listed, out)
    return total


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="depthlab data", description="data set tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="read every sample of every split once and report every problem")
    p.add_argument("--config", required=True, help="the YAML given to 'depthlab fit'")
    p.add_argument("--split", action="append", choices=["train", "val", "test"],
                   help="check only this split (repeatable; default: all distinct splits)")
    p.add_argument("--workers", type=int, default=0, help="reader processes (default 0: in this process)")
    p.add_argument("--limit", type=int, default=None, help="check only the first N samples of each split")
    p.add_argument("--max-listed", type=int, default=20, help="problems printed per kind (default 20)")
    p.epilog = "Any --data.* argument of 'depthlab fit' overrides the config, e.g. --data.init_args.raw_root /mnt/kitti"
    s = sub.add_parser("stats", help="per split: image sizes, valid-depth share, depth percentiles (m), intrinsics")
    s.add_argument("--config", required=True, help="the YAML given to 'depthlab fit'")
    s.add_argument("--split", action="append", choices=["train", "val", "test"],
                   help="only this split (repeatable; default: all distinct splits)")
    s.add_argument("--limit", type=int, default=None, help="only the first N samples of each split")
    s.epilog = p.epilog
    return parser


def main(argv: list[str]) -> int:
    """data set tools: 'depthlab data check|stats --config X.yaml' validates / describes every split"""
    args, overrides = _parser().parse_known_args(argv)
    unknown = [a for a in overrides if a.startswith("-") and not a.startswith("--data.")]
    if unknown:
        raise ConfigError(f"depthlab data {args.command}: unknown option {unknown[0]} (overrides must be --data.*)")
    if args.command == "stats":
        from depthlab.data.stats import stats

        stats(build_datamodule(args.config, overrides), args.split, args.limit)
        return 0
    problems = validate_dataset(args.config, args.split, args.workers, args.limit, args.max_listed, overrides=overrides)
    return 1 if problems else 0
