"""Depth Hints precompute throughput at KITTI size: today's code against the code before issue 21's
speed-up (paired, in one run), worker scaling, and the projection to the Eigen training split.

    python benchmarks/bench_hints.py                 # 4 pairs, all cores, 2 repeats; Markdown tables
    python benchmarks/bench_hints.py --pairs 8 --workers 4 --repeats 3 --no-small
    python benchmarks/bench_hints.py --profile       # where one pair's time goes, old and new code

What is timed, on KITTI-layout PNG pairs of 375x1242 written to a temporary tree (camera-like
texture; the right image is the left one resampled with a smooth disparity field of 5-60 px, so
SGM finds matches as on a road scene), the published 12-setting grid, both views per pair, one
process with one OpenCV and one torch thread unless said otherwise:

- Old against new, paired (each pair's old and new stage timed one after the other; the whole
  precompute runs alternate old, new, old, new ... ``--repeats`` times; the fastest of each is kept),
  in wall seconds and in this process's CPU seconds (steadier where other programs share the cores):
  - ``SGM candidates``: ``sgm_candidates`` of both views (the old code: 24 ``StereoSGBM.compute``
    per pair, one per setting; the new one matches OpenCV-equivalent settings once: 16).
  - ``fusion``: ``fuse_disparities`` of both views on those candidates (old: torch
    ``geometry.reprojection_error``, avg_pool2d SSIM, per candidate; new: the NumPy scorer, the
    target's SSIM terms once per view).
  - ``precompute, 1 worker``: ``depthlab.hints.precompute.precompute`` in this process (PNG reads,
    SGM, fusion, .npy writes); the old run has ``compute_stereo_hints`` swapped for the old one
    (tests/hints/hints_reference.py). The two runs' files are compared byte for byte.
- Scaling: precompute's job function (``run_job``: read, match, fuse, write) in a pool of 1 and of
  N spawned, single-threaded processes, timed once the pool is up (the start-up, each worker
  importing torch, is printed apart: a run of hours pays it once).
- ``precompute, 1 worker, --size 320 1024``: matching at the published code's resolution.

Projection: the Eigen training list shipped in data/splits (every line has annotated depth, so every
pair is needed), divided by the measured pairs/s. "per 16 cores" scales the per-worker rate of the
N-worker run by 16 (assumes no further contention). Beside it the published figure: about 4 h on a
GPU for 46,976 images at 320x1024 (Watson et al. 2019, depth-hints README).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "hints"))  # hints_reference: the code before the speed-up, the baseline
EIGEN_TRAIN_LIST = REPO / "data" / "splits" / "eigen_train_files_with_gt.txt"
PUBLISHED_HOURS, PUBLISHED_IMAGES = 4.0, 46_976  # Watson et al. 2019, depth-hints README (GPU, 320x1024)
HEIGHT, WIDTH = 375, 1242  # KITTI 2011_09_26 frames
P02 = "7.215377e+02 0 6.095593e+02 4.485728e+01 0 7.215377e+02 1.728540e+02 2.163791e-01 0 0 1 2.745884e-03"
P03 = "7.215377e+02 0 6.095593e+02 -3.395242e+02 0 7.215377e+02 1.728540e+02 2.199936e+00 0 0 1 2.729905e-03"


def stereo_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Camera-like texture and its right view under a road-like disparity (5 px at the top, 60 px
    at the bottom, a nearer box in the middle): right(x, y) = left(x + d(x, y), y)."""
    low = cv2.resize(rng.integers(0, 256, (HEIGHT // 8, (WIDTH + 64) // 8, 3), dtype=np.uint8), (WIDTH + 64, HEIGHT),
                     interpolation=cv2.INTER_CUBIC).astype(np.float32)
    texture = np.clip(low + rng.normal(0, 6, low.shape), 0, 255).astype(np.uint8)
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    disparity = 5 + 55 * v / (HEIGHT - 1)
    box = (abs(u - WIDTH / 2) < 150) & (abs(v - HEIGHT / 2) < 80)
    disparity[box] = 45
    left = np.ascontiguousarray(texture[:, :WIDTH])
    right = cv2.remap(texture, u + disparity, v, cv2.INTER_LINEAR)
    return left, right


def write_tree(root: Path, pairs: int, seed: int) -> Path:
    """A KITTI raw layout with ``pairs`` frames and a list (ground truth 'None': Velodyne source)."""
    rng = np.random.default_rng(seed)
    date, drive = "2011_09_26", "2011_09_26_drive_0001_sync"
    (root / "raw" / date).mkdir(parents=True)
    (root / "raw" / date / "calib_cam_to_cam.txt").write_text(f"P_rect_02: {P02}\nP_rect_03: {P03}\n")
    lines = []
    for n in range(pairs):
        name = f"{n:010d}.png"
        for camera, image in zip(("image_02", "image_03"), stereo_pair(rng)):
            path = root / "raw" / date / drive / camera / "data" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        lines.append(f"{date}/{drive}/image_02/data/{name} None 721.5377")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root


def datamodule(tree: Path):
    from depthlab.data import KITTIDataModule

    return KITTIDataModule(raw_root=str(tree / "raw"), train_list=str(tree / "list.txt"), train_gt_source="velodyne",
                           eval_gt_source="velodyne", stereo=True, kb_crop=False)


def single_threaded() -> None:
    """One OpenCV and one torch thread in this process, as every precompute worker runs."""
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def clock() -> np.ndarray:
    """(wall, CPU of this process) seconds; differences of two readings time a stretch both ways."""
    return np.array([time.perf_counter(), time.process_time()])


def paired_stages(jobs) -> dict[str, np.ndarray]:
    """{stage: [[old wall, old CPU], [new wall, new CPU]] seconds} over ``jobs``, both views; each
    pair's old and new run back to back."""
    from hints_reference import reference_candidates, reference_fuse

    from depthlab.hints import PUBLISHED_GRID, fuse_disparities, sgm_candidates

    totals = {"SGM candidates": np.zeros((2, 2)), "fusion": np.zeros((2, 2))}
    for job in jobs:
        left, right = job.read()[:2]
        views = ((left, right), (np.ascontiguousarray(right[:, ::-1]), np.ascontiguousarray(left[:, ::-1])))
        for target, other in views:
            candidates = []
            for column, match in enumerate((reference_candidates, sgm_candidates)):
                start = clock()
                candidates.append(match(target, other, PUBLISHED_GRID))
                totals["SGM candidates"][column] += clock() - start
            if not np.array_equal(*candidates, equal_nan=True):
                raise RuntimeError("the SGM candidates differ between the old and the new code")
            fused = []
            for column, fuse in enumerate((reference_fuse, fuse_disparities)):
                start = clock()
                fused.append(fuse(target, other, candidates[0]))
                totals["fusion"][column] += clock() - start
            if not all(np.array_equal(a, b) for a, b in zip(*fused)):
                raise RuntimeError("the fused disparities differ between the old and the new code")
    return totals


def profile_pair(seed: int) -> dict[str, dict[str, float]]:
    """{stage: {"old": s, "new": s}}: cProfile of ``compute_stereo_hints`` (both views) on one pair in
    memory, old code and new, one thread, in CPU seconds of this process (other programs on the
    cores do not count); each stage is the cumulative time of the functions named."""
    import cProfile
    import pstats

    from hints_reference import reference_stereo_hints

    from depthlab.hints import compute_stereo_hints

    left, right = stereo_pair(np.random.default_rng(seed))
    stages = {  # stage: substrings of cProfile's function keys, cumulative time summed
        "SGM (StereoSGBM.compute)": ["'compute' of 'cv2.StereoMatcher'"],
        "SSIM and error (old: geometry.reprojection_error; new: the NumPy scorer)": [
            "geometry.py:reprojection_error", "fusion.py:error", "fusion.py:error_at", "fusion.py:__init__"],
        "  of which avg_pool2d / 3x3 sums": ["avg_pool2d", "fusion.py:_box_mean3"],
        "warp (geometry.warp_horizontal)": ["geometry.py:warp_horizontal"],
        "copies and settled pixels (array_equal, _settled)": ["numeric.py:array_equal", "fusion.py:_settled"],
    }
    table: dict[str, dict[str, float]] = {stage: {} for stage in [*stages, "other", "total"]}
    for version, compute in (("old", reference_stereo_hints), ("new", compute_stereo_hints)):
        compute(left[:64, :400].copy(), right[:64, :400].copy(), 721.5377, 0.5372)  # first-call costs out
        profiler = cProfile.Profile(time.process_time)
        start = time.process_time()
        profiler.runcall(compute, left, right, 721.5377, 0.5372)
        total = time.process_time() - start
        entries = pstats.Stats(profiler).stats  # {(file, line, name): (calls, calls, tottime, cumtime, callers)}
        names = {key: f"{Path(key[0]).name}:{key[2]}" if key[0] != "~" else key[2] for key in entries}
        for stage, patterns in stages.items():
            table[stage][version] = sum(entries[key][3] for key, name in names.items()
                                        if any(pattern in name for pattern in patterns))
        table["total"][version] = total
        table["other"][version] = total - sum(table[stage][version] for stage in stages if not stage.startswith(" "))
    return table


def _ready(_: int) -> int:
    import depthlab.data.kitti  # what a worker imports to unpickle its first KITTI job  # noqa: F401
    return os.getpid()


def _cpu_timed_job(job, root: str):
    """precompute's ``run_job`` on one pair, and the CPU seconds this worker process spent on it."""
    from depthlab.hints import PUBLISHED_GRID
    from depthlab.hints.precompute import run_job

    start = time.process_time()
    result = run_job(job, root=root, settings=PUBLISHED_GRID, size=None)
    return result, time.process_time() - start


def pool_seconds(jobs, root: Path, workers: int) -> tuple[float, float, float]:
    """(start-up, work, CPU per pair) seconds of ``workers`` spawned processes running precompute's
    own job function (``run_job``) on ``jobs``: the pool is started and warmed first, so that the
    work time is the steady state a run of hours sees. The CPU seconds per pair (each worker's own
    process time) grow only with contention between the workers (memory, caches), not with other
    programs that take the cores away: on a shared machine they tell the scaling that wall time cannot."""
    from functools import partial

    from depthlab.hints.precompute import _single_threaded

    work = partial(_cpu_timed_job, root=str(root))
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_single_threaded) as pool:
        pool.map(_ready, range(workers), chunksize=1)
        ready = time.perf_counter()
        results = list(pool.imap_unordered(work, jobs, chunksize=1))
        done = time.perf_counter()
    if any(result.error for result, _ in results):
        raise RuntimeError(f"precompute failed: {[result.error for result, _ in results if result.error]}")
    return ready - start, done - ready, sum(cpu for _, cpu in results) / len(results)


def timed_precompute(tree: Path, root: Path, size=None, old: bool = False) -> np.ndarray:
    """(wall, CPU) seconds of the whole ``precompute()`` call with one worker (in this process, one thread);
    ``old``: with the hint computation before the speed-up in place of ``compute_stereo_hints``."""
    from unittest import mock

    from hints_reference import reference_stereo_hints

    import depthlab.hints.precompute as precompute_module

    compute = reference_stereo_hints if old else precompute_module.compute_stereo_hints
    with open(os.devnull, "w") as quiet, mock.patch.object(precompute_module, "compute_stereo_hints", compute):
        start = clock()
        summary = precompute_module.precompute(datamodule(tree), root, splits=["train"], workers=1, size=size,
                                               progress=False, out=quiet)
        seconds = clock() - start
    if summary.failures or summary.computed == 0:
        raise RuntimeError(f"precompute failed: {summary.failures}")
    return seconds


def same_files(first: Path, second: Path) -> int:
    """The number of hint files, after checking that the two folders hold byte-identical ones."""
    files = sorted(path.relative_to(first) for path in first.rglob("*.npy"))
    if not files or files != sorted(path.relative_to(second) for path in second.rglob("*.npy")):
        raise RuntimeError(f"{first} and {second} hold different hint files")
    for relpath in files:
        if (first / relpath).read_bytes() != (second / relpath).read_bytes():
            raise RuntimeError(f"{relpath}: the old and the new code wrote different hints")
    return len(files)


def main() -> int:
    default_workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4, help="stereo pairs timed per run (default 4)")
    parser.add_argument("--workers", type=int, default=default_workers,
                        help="N of the N-worker run (default: all cores)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="old/new precompute runs, alternating; the fastest of each is kept (default 2)")
    parser.add_argument("--no-small", action="store_true", help="skip the --size 320 1024 run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true",
                        help="only profile one pair (cProfile, old and new code) and print the stages")
    args = parser.parse_args()

    single_threaded()
    if args.profile:
        print(f"cProfile of compute_stereo_hints on one {HEIGHT}x{WIDTH} pair (both views), one thread:\n")
        print("| stage | old CPU s | new CPU s |")
        print("|---|---|---|")
        for stage, seconds in profile_pair(args.seed).items():
            print(f"| {stage} | {seconds['old']:.2f} | {seconds['new']:.2f} |")
        return 0
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    eigen_pairs = sum(1 for line in EIGEN_TRAIN_LIST.read_text().splitlines() if line.strip())
    with tempfile.TemporaryDirectory() as tmp:
        tree = write_tree(Path(tmp) / "kitti", args.pairs, args.seed)
        from depthlab.hints.precompute import list_jobs

        jobs = list_jobs(datamodule(tree), ["train"])
        stages = paired_stages(jobs)
        runs: dict[str, list[np.ndarray]] = {"old": [], "new": []}
        for repeat in range(args.repeats):
            for version in runs:
                runs[version].append(timed_precompute(tree, Path(tmp) / f"{version}{repeat}", old=version == "old"))
        files = same_files(Path(tmp) / "old0", Path(tmp) / "new0")
        # the fastest run of each, by wall time and by CPU time apart
        stages["precompute, 1 worker (read, SGM, fusion, write)"] = np.array(
            [np.min(runs["old"], axis=0), np.min(runs["new"], axis=0)])
        startup_1, one, cpu_one = pool_seconds(jobs, Path(tmp) / "p1", 1)
        startup_n, many, cpu_many = pool_seconds(jobs, Path(tmp) / "pN", args.workers)
        small = None if args.no_small else timed_precompute(tree, Path(tmp) / "h320", size=(320, 1024))[0]

    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Depth Hints precompute at {HEIGHT}x{WIDTH}, 12 SGM settings, both views; {args.pairs} pairs per run; "
          f"{platform.processor() or platform.machine()}, {default_workers} cores available, "
          f"OpenCV {cv2.__version__}, Python {sys.version.split()[0]}\n")
    print("Old (before issue 21) against new, one process, one thread; the same pairs in this run:\n")
    print("| per pair, both views | old s | new s | old / new | old CPU s | new CPU s | old / new, CPU |")
    print("|---|---|---|---|---|---|---|")
    for stage, ((old, old_cpu), (new, new_cpu)) in stages.items():
        print(f"| {stage} | {old / args.pairs:.2f} | {new / args.pairs:.2f} | {old / new:.2f} | "
              f"{old_cpu / args.pairs:.2f} | {new_cpu / args.pairs:.2f} | {old_cpu / new_cpu:.2f} |")
    (old, old_cpu), (new, new_cpu) = stages["precompute, 1 worker (read, SGM, fusion, write)"]
    print(f"\nPairs/s per worker: old {args.pairs / old:.3f}, new {args.pairs / new:.3f} ({old / new:.2f}x; "
          f"{old_cpu / new_cpu:.2f}x in CPU seconds; fastest of {args.repeats} alternating runs each). The {files} "
          "hint files of the old and the new run are byte-identical.\n")

    rows = [("precompute, 1 worker, old code", 1, old),
            ("precompute, 1 worker", 1, new),
            ("precompute, 1 spawned worker process", 1, one),
            (f"precompute, {args.workers} spawned worker processes", args.workers, many)]
    if small is not None:
        rows.append(("precompute, 1 worker, --size 320 1024", 1, small))
    print(f"Projection: Eigen training list, {eigen_pairs} pairs ({2 * eigen_pairs} hint files)\n")
    print("| run | processes | s | pairs/s | s per pair per process | Eigen train: hours here | hours on 16 cores |")
    print("|---|---|---|---|---|---|---|")
    for name, processes, seconds in rows:
        rate = args.pairs / seconds
        per_process = rate / processes
        print(f"| {name} | {processes} | {seconds:.1f} | {rate:.3f} | {1 / per_process:.2f} | "
              f"{eigen_pairs / rate / 3600:.1f} | {eigen_pairs / (per_process * 16) / 3600:.1f} |")
    published_pairs_per_s = PUBLISHED_IMAGES / 2 / (PUBLISHED_HOURS * 3600)
    print(f"| published (Watson et al. 2019): GPU, 320x1024 | 1 GPU | - | {published_pairs_per_s:.2f} | - | "
          f"{eigen_pairs / published_pairs_per_s / 3600:.1f} | - |")
    scaling = one / many
    print(f"\nScaling: {args.workers} worker processes give {scaling:.2f}x the pairs/s of one "
          f"({scaling / args.workers:.2f} x workers; both timed once their pool is up). CPU seconds per pair in a "
          f"worker: {cpu_one:.2f} alone, {cpu_many:.2f} beside {args.workers - 1} other(s) "
          f"({cpu_one / cpu_many:.2f}: the scaling the pool allows where every worker has a core of its own). "
          f"Starting the pools (imports included) took {startup_1:.1f} s and {startup_n:.1f} s, once per run; "
          f"not in the tables. Load average (1 min) before / after: {load_before:.1f} / {load_after:.1f} "
          f"on {default_workers} cores.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
