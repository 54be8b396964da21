"""``depthlab data check --config X.yaml``: read every sample of every split once, report every problem.

Builds the data module from the ``data:`` section of the same YAML that ``depthlab fit`` reads, loads
each sample of each split without augmentation (decoding every image and depth map), and prints the
problems grouped by kind with their counts, each naming the file and the split-list line. Exit status
1 when anything is wrong, so it can gate a multi-hour job::

    depthlab data check --config configs/kitti.yaml --workers 8
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset

from depthlab.data.base import DepthFileDataset, FileDataModule
from depthlab.data.readers import DataError, Problem
from depthlab.errors import ConfigError


class _ProblemsOf(Dataset):
    """Index -> the problems of that sample, so a DataLoader can spread the walk over workers."""

    def __init__(self, dataset: DepthFileDataset, limit: int | None) -> None:
        self.dataset = dataset
        self.length = len(dataset) if limit is None else min(limit, len(dataset))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> list[Problem]:
        return self.dataset.problems(index)


def _unbatched(batch: list[Any]) -> Any:
    return batch[0]


def build_datamodule(config_path: str | Path, overrides: list[str] | None = None) -> FileDataModule:
    """The data module of a depthlab config, parsed exactly as ``depthlab fit`` parses it
    (``overrides``: ``--data.*`` arguments as on the command line)."""
    from depthlab.config import datamodule_from_config

    path = Path(config_path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    return datamodule_from_config(["--config", str(path), *(overrides or [])], prog="depthlab data check")

def _report(header: str, problems: list[Problem], max_listed: int, out) -> int:
    by_kind: dict[str, list[Problem]] = defaultdict(list)
    for problem in problems:
        by_kind[problem.kind].append(problem)
    print(f"{header}: {len(problems)} problem{'s' * (len(problems) != 1)}", file=out)
    for kind, found in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
        print(f"  {kind}: {len(found)}", file=out)
        for problem in found[:max_listed]:
            print(f"    {problem}", file=out)
        if len(found) > max_listed:
            print(f"    ... and {len(found) - max_listed} more", file=out)
    return len(problems)


def check(datamodule: FileDataModule, splits: list[str] | None = None, workers: int = 0,
          limit: int | None = None, max_listed: int = 20, out=None) -> int:
    """Walk the splits, print the report (to ``out``, default stdout), return the number of problems."""
    out = out or sys.stdout
    total = 0
    for split in splits or datamodule.check_splits():
        try:  # malformed list lines are kept as problems, the other lines still checked
            dataset = datamodule.build(split, augment=None, strict=False)  # type: ignore[arg-type]
        except DataError as exc:  # a whole file (the .mat) is broken: report it, go on
            problems = exc.problems or [Problem("error", "?", str(exc), f"data ({split})")]
            total += _report(f"{split}: cannot build the split", problems, max_listed, out)
            continue
        walk = _ProblemsOf(dataset, limit)
        start = time.perf_counter()
        problems = list(dataset.list_problems)
        problems += [p for found in DataLoader(walk, batch_size=1, num_workers=workers, collate_fn=_unbatched)
                     for p in found]
        skipped = getattr(dataset, "skipped", 0)
        note = f", {skipped} list lines without ground truth skipped" if skipped else ""
        header = f"{split}: {len(walk)} samples checked in {time.perf_counter() - start:.1f} s{note}"
        total += _report(header, problems, max_listed, out)
    print(f"total: {total} problem{'s' * (total != 1)}", file=out)
    return total


def validate_dataset(config_path: str | Path, splits: list[str] | None = None, workers: int = 0,
                     limit: int | None = None, max_listed: int = 20, out=None,
                     overrides: list[str] | None = None) -> int:
    """``depthlab data check`` as a function: build the config's data module, walk it, print the
    report; returns the number of problems (0 when every sample reads cleanly)."""
    return check(build_datamodule(config_path, overrides), splits, workers, limit, max_listed, out)


def main(argv: list[str]) -> int:
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
    args, overrides = parser.parse_known_args(argv)
    unknown = [a for a in overrides if a.startswith("-") and not a.startswith("--data.")]
    if unknown:
        raise ConfigError(f"depthlab data check: unknown option {unknown[0]} (overrides must be --data.*)")
    problems = validate_dataset(args.config, args.split, args.workers, args.limit, args.max_listed, overrides=overrides)
    return 1 if problems else 0
