"""``depthlab data check|stats|pack --config X.yaml``: the data a config trains on, checked, described, packed.

The front end of :func:`depthlab.data.check.check` and :func:`depthlab.data.stats.stats`: builds the
data module from the same YAML that ``depthlab fit`` reads (:func:`depthlab.parser.datamodule_from_config`)
and walks it (each member of a mixture in turn). ``check`` exits with status 1 when anything is wrong,
so it can gate a multi-hour job; ``stats`` prints per split the image sizes, the valid-depth share,
depth percentiles in metres and the intrinsics found; ``pack`` writes splits to litdata's optimised
chunks (:mod:`depthlab.data.pack`; a folder or ``s3://``) for :class:`depthlab.data.StreamingDataModule`::

    depthlab data check --config configs/kitti.yaml --workers 8
    depthlab data stats --config configs/own_data.yaml --limit 200
    depthlab data pack --config configs/own_data.yaml --split train --split val --output packs/mine --workers 4
"""

from __future__ import annotations

import argparse
import os
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
    k = sub.add_parser("pack", help="write splits to litdata's optimised chunks (a folder or s3://...) for "
                                    "depthlab.data.StreamingDataModule")
    k.add_argument("--config", required=True, help="the YAML given to 'depthlab fit'")
    k.add_argument("--split", action="append", choices=["train", "val", "test"],
                   help="pack this split (repeatable; default: train); written to OUTPUT/<split>/")
    k.add_argument("--output", required=True, help="a folder or a URI (s3://bucket/prefix) that gets <split>/")
    k.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="litdata worker processes (default: one per core)")
    k.add_argument("--chunk-bytes", default="64MB", help="the size of litdata's chunks (default 64MB)")
    k.add_argument("--overwrite", action="store_true", help="replace a pack already at OUTPUT/<split>/")
    k.epilog = p.epilog
    return parser


def pack_dataset(config_path: str | Path, splits: list[str], output: str, workers: int, chunk_bytes: str = "64MB",
                 overwrite: bool = False, overrides: list[str] | None = None, progress: bool = True, out=None) -> list:
    """``depthlab data pack`` as a function: build the config's data module and write each of
    ``splits`` to ``<output>/<split>/``; returns the :class:`~depthlab.data.pack.PackReport` s."""
    from depthlab.data.pack import pack_split, require_litdata
    from depthlab.parser import data_settings_from_config

    require_litdata("depthlab data pack")  # before parsing: the one line that says what to install
    path = Path(config_path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    settings, module = data_settings_from_config(["--config", str(path), *(overrides or [])], prog="depthlab data pack")
    source = {**settings, "config": str(path), "overrides": list(overrides or [])}
    reports = []
    for split in splits:
        report = pack_split(module, split, output, workers=workers, chunk_bytes=chunk_bytes, overwrite=overwrite,
                            source=source, progress=progress)
        print(report.line(), file=out, flush=True)
        reports.append(report)
    print(f"pack: train from it with data: {{class_path: depthlab.data.StreamingDataModule, init_args: "
          f"{{input_dir: {output}}}}} (configs/streaming.yaml)", file=out)
    return reports


def main(argv: list[str]) -> int:
    """data set tools: 'depthlab data check|stats|pack --config X.yaml' validates / describes / packs the splits"""
    args, overrides = _parser().parse_known_args(argv)
    unknown = [a for a in overrides if a.startswith("-") and not a.startswith("--data.")]
    if unknown:
        raise ConfigError(f"depthlab data {args.command}: unknown option {unknown[0]} (overrides must be --data.*)")
    if args.command == "pack":
        pack_dataset(args.config, args.split or ["train"], args.output, args.workers, args.chunk_bytes, args.overwrite,
                     overrides)
        return 0
    if args.command == "stats":
        from depthlab.data.stats import stats

        stats(build_datamodule(args.config, overrides), args.split, args.limit)
        return 0
    problems = validate_dataset(args.config, args.split, args.workers, args.limit, args.max_listed, overrides=overrides)
    return 1 if problems else 0
