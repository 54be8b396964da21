"""The Depth Hints of every stereo pair of a data module, once, on disk (:func:`precompute`).

    depthlab hints precompute --config configs/kitti.yaml [--workers N] [--hints_root DIR] [--data.* ...]
    depthlab hints precompute --config configs/kitti.yaml --shard 3/16       # one 16th of the pairs

The command's front end (:mod:`depthlab.commands.hints`) parses the config exactly as ``depthlab fit``
parses it (``--data.*`` overrides included) and hands the data module to :func:`precompute`. Each pair
(:class:`HintJob`, listed by the data module's ``hint_jobs(split)``) is read at full frame,
matched and fused (:func:`depthlab.hints.compute_stereo_hints`), and both views' hints are
written with :func:`depthlab.hints.store.save_hint` (temporary name, then ``os.replace``). Pairs
whose two files exist are skipped, so a killed run resumes where it stopped; ``manifest.json``
keeps runs with other settings out of the folder. Work is spread over ``--workers`` spawned
processes (one OpenCV and one torch thread each). A pair that cannot be read is reported with its
file and list line at the end while the others finish; the exit status is then 1.

``shard=(i, n)`` (``--shard i/n``) computes the pairs at positions i, i + n, i + 2n, ... of the full
job list (:func:`shard_jobs`), so any scheduler can run the n shards at once into one folder: each
pair has one shard, every shard claims the same manifest (:func:`~depthlab.hints.store.claim_hints_root`
refuses a shard with other settings), and the files are the ones a single run writes, byte for byte.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TextIO

import numpy as np

from depthlab.errors import ConfigError
from depthlab.hints.fusion import check_size, compute_stereo_hints
from depthlab.hints.sgm import PUBLISHED_GRID, SGMSetting
from depthlab.hints.store import claim_hints_root, make_manifest, save_hint

SPLITS = ("train", "val", "test")


class HintJob(Protocol):
    """One stereo pair to compute hints for, as a data module's ``hint_jobs(split)`` lists it.
    Must pickle (it travels to worker processes)."""

    @property
    def source(self) -> str:
        """What names the pair in a report: its split-list line (``list.txt:12``) or sample."""

    @property
    def outputs(self) -> tuple[str, str]:
        """The left and right view's hint files, relative to the hints root."""

    def read(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(left, right uint8 (H, W, 3) full frames, fx pixels, baseline_m metres); raises
        ``depthlab.data.DataError`` naming the file and list line."""


@dataclass(frozen=True)
class JobResult:
    source: str
    coverage: tuple[float, float] | None  # fraction of pixels with a hint, left and right; None if failed
    error: str | None = None


def run_job(job: HintJob, root: str, settings: Sequence[SGMSetting], size: Sequence[int] | None) -> JobResult:
    """Compute and write one pair's hints. Never raises: a failure comes back as the result's error."""
    from depthlab.data.readers import DataError

    try:
        left, right, fx, baseline_m = job.read()
        hints = compute_stereo_hints(left, right, fx, baseline_m, settings, size)
        for relpath, depth in zip(job.outputs, (hints.depth, hints.depth_right)):
            save_hint(Path(root) / relpath, depth)
    except DataError as exc:  # names the file and its list line already
        return JobResult(job.source, None, str(exc))
    except Exception as exc:  # noqa: BLE001 - one bad pair must not end a run of hours; listed at the end
        return JobResult(job.source, None, f"{job.source}: {type(exc).__name__}: {exc}")
    return JobResult(job.source, (float(hints.valid.mean()), float(hints.valid_right.mean())))


def _single_threaded() -> None:
    """Worker set-up: one process per core, so neither OpenCV nor torch may start a thread pool."""
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _results(todo: list[HintJob], work: Any, workers: int) -> Iterator[JobResult]:
    if workers == 1:  # in this process, single-threaded like a worker, so one worker means one core
        import cv2
        import torch

        threads = cv2.getNumThreads(), torch.get_num_threads()
        _single_threaded()
        try:
            yield from map(work, todo)
        finally:
            cv2.setNumThreads(threads[0])
            torch.set_num_threads(threads[1])
        return
    import multiprocessing

    # spawn, not fork: a forked child of a process that has started OpenCV's or torch's thread
    # pools can deadlock, and spawn behaves the same on every platform.
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_single_threaded) as pool:
        yield from pool.imap_unordered(work, todo, chunksize=1)


def default_workers() -> int:
    """All cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class PrecomputeSummary:
    """What one run did. ``coverage``: mean fraction of pixels with a hint over both views of the
    pairs computed in this run (None when it computed none)."""

    pairs: int
    computed: int
    skipped: int
    failures: list[str] = field(default_factory=list)
    coverage: float | None = None
    coverage_views: tuple[float, float] | None = None
    seconds: float = 0.0


def list_jobs(datamodule: Any, splits: Iterable[str] | None = None) -> list[HintJob]:
    """Every pair of ``splits`` (default all three) once, in split-list order (a frame listed in two
    splits, e.g. KITTI's val and test lists, is one job)."""
    if not hasattr(datamodule, "hint_jobs"):
        raise ConfigError(f"data: {type(datamodule).__name__} has no stereo pairs to compute hints for "
                          "(KITTIDataModule and SyntheticDataModule have)")
    jobs: dict[tuple[str, str], HintJob] = {}
    for split in splits or SPLITS:
        for job in datamodule.hint_jobs(split):
            jobs.setdefault(job.outputs, job)
    return list(jobs.values())


def shard_jobs(jobs: Sequence[HintJob], shard: tuple[int, int] | None) -> list[HintJob]:
    """Shard ``i`` of ``n``: the jobs at positions ``i, i + n, i + 2n, ...`` of the list (all of them for
    None). Every n-th rather than a block, so that each shard gets pairs from every sequence and split."""
    if shard is None:
        return list(jobs)
    index, count = shard
    if not 0 <= index < count:
        raise ConfigError(f"shard: expected (i, n) with 0 <= i < n, got {tuple(shard)}")
    return list(jobs[index::count])


def precompute(datamodule: Any, hints_root: str | os.PathLike, splits: Iterable[str] | None = None,
               workers: int | None = None, settings: Sequence[SGMSetting] = PUBLISHED_GRID,
               size: Sequence[int] | None = None, settings_choice: str = "grid", limit: int | None = None,
               progress: bool = True, out: TextIO | None = None,
               shard: tuple[int, int] | None = None) -> PrecomputeSummary:
    """Compute the missing hints of every pair of ``datamodule`` under ``hints_root``; print what
    it does to ``out`` (default stdout) and a tqdm bar (pairs/s, ETA) to stderr.

    Args:
        datamodule: KITTIDataModule or SyntheticDataModule (anything with ``hint_jobs(split)``,
            ``hints_data`` and ``hint_layout``).
        hints_root: the hints folder; its ``manifest.json`` is written on the first run and must
            match on later ones (else :class:`ConfigError`).
        splits: the splits whose pairs to compute (default train, val and test).
        workers: processes (default all cores); 1 computes in this process.
        settings, size: as :func:`depthlab.hints.compute_stereo_hints`.
        settings_choice: how ``settings`` were chosen, recorded in the manifest (``grid``, ``random ...``).
        limit: compute at most this many pairs in this run (a trial; the rest stay to do).
        shard: ``(i, n)``: only shard i (from 0) of n (:func:`shard_jobs`); all pairs for None.
    """
    out = out or sys.stdout
    from tqdm import tqdm

    try:
        size = check_size(size)
    except ValueError as exc:
        raise ConfigError(f"--size: {exc}") from None
    root = Path(hints_root).expanduser()
    every = list_jobs(datamodule, splits)
    jobs = shard_jobs(every, shard)
    if shard is not None:
        print(f"hints precompute: shard {shard[0]}/{shard[1]}: {len(jobs)} of the {len(every)} pairs", file=out)
    manifest = make_manifest(settings, size, datamodule.hints_data, datamodule.hint_layout, settings_choice)
    claim_hints_root(root, manifest)
    todo = [job for job in jobs if not all((root / relpath).is_file() for relpath in job.outputs)]
    summary = PrecomputeSummary(pairs=len(jobs), computed=0, skipped=len(jobs) - len(todo))
    if limit is not None:
        todo = todo[:max(limit, 0)]
    workers = max(1, min(workers or default_workers(), len(todo) or 1))
    at_size = "the images' own size" if size is None else f"{size[0]}x{size[1]} (resized back)"
    print(f"hints precompute: {len(jobs)} pairs -> {root}; {len(settings)} SGM settings ({settings_choice}) "
          f"at {at_size}; {summary.skipped} already done, {len(todo)} to compute with {workers} "
          f"worker{'s' * (workers != 1)}", file=out)
    work = partial(run_job, root=str(root), settings=tuple(settings), size=size)
    coverages: list[tuple[float, float]] = []
    start = time.perf_counter()
    bar = tqdm(total=len(todo), unit="pair", desc="hints", disable=not progress, smoothing=0.05)
    try:
        for result in _results(todo, work, workers):
            if result.error is None:
                coverages.append(result.coverage)
            else:
                summary.failures.append(result.error)
            bar.update(1)
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - start
    summary.computed = len(coverages)
    rate = len(todo) / summary.seconds if summary.seconds > 0 else float("nan")
    print(f"computed {summary.computed} pairs in {summary.seconds:.1f} s ({rate:.2f} pairs/s), "
          f"skipped {summary.skipped} already done, {len(summary.failures)} failed", file=out)
    if coverages:
        views = np.asarray(coverages).mean(axis=0)
        summary.coverage_views = (float(views[0]), float(views[1]))
        summary.coverage = float(views.mean())
        print(f"coverage: {summary.coverage:.3f} of the pixels have a hint (mean over the {len(coverages)} pairs "
              f"computed now; left {views[0]:.3f}, right {views[1]:.3f})", file=out)
    if summary.failures:
        print(f"{len(summary.failures)} pair{'s' * (len(summary.failures) != 1)} failed (no hint written; fix "
              "them and run again: finished pairs are skipped):", file=out)
        for failure in summary.failures:
            print(f"  {failure}", file=out)
    return summary
