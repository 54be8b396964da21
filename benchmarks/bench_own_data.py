"""Own-data loading throughput: RGBDDataModule samples/s of ONE worker against a bare decode.

    python benchmarks/bench_own_data.py               # writes temp folders, prints a Markdown table
    python benchmarks/bench_own_data.py --frames 48 --repeats 5

Two folders in the layout users give depthlab (``rgb/`` + ``depth/``): NYU-like 480x640 JPGs with
millimetre 16-bit PNGs, and KITTI-like 375x1242 PNGs with sparse 16-bit PNGs (1/256 m). Timed in one
process with one OpenCV thread (what each DataLoader worker does), page cache warm:

- ``bare decode``: ``cv2.imread`` of the image and of the depth PNG, nothing else (the floor);
- ``RGBDDataset[i]``: depthlab's whole sample path (read, checks, unit conversion, validity,
  the ``size``-free pipeline and the conversion to tensors);
- ``... + RandomCrop + flip``: with a training augmentation.

Each figure is the best of ``--repeats`` passes over all frames (samples/s, higher is better); the
ratio is depthlab's rate over the bare decode's, measured in the same run.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import camera_like, sparse_depth  # noqa: E402

from depthlab.data.rgbd import RGBDDataModule  # noqa: E402

CASES = {  # name: (H, W, image suffix, depth scale, density, crop)
    "480x640 (NYU-like, JPG + mm PNG)": (480, 640, ".jpg", 1000.0, 1.0, (416, 544)),
    "375x1242 (KITTI-like, PNG + sparse PNG)": (375, 1242, ".png", 256.0, 0.15, (352, 704)),
}


def write_folder(root: Path, frames: int, height: int, width: int, suffix: str, scale: float, density: float) -> None:
    rng = np.random.default_rng(0)
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    for i in range(frames):
        cv2.imwrite(str(root / "rgb" / f"{i:05d}{suffix}"), camera_like(height, width, rng))
        cv2.imwrite(str(root / "depth" / f"{i:05d}.png"), sparse_depth(height, width, rng, scale, density))


def rate(fn, count: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(count):
            fn(i)
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (h, w, suffix, scale, density, crop) in CASES.items():
            root = Path(tmp) / name.split()[0]
            write_folder(root, args.frames, h, w, suffix, scale, density)
            images = sorted((root / "rgb").iterdir())
            depths = sorted((root / "depth").iterdir())

            def bare(i: int) -> None:
                cv2.imread(str(images[i]), cv2.IMREAD_COLOR)
                cv2.imread(str(depths[i]), cv2.IMREAD_UNCHANGED)

            plain = RGBDDataModule(train=str(root), val=str(root), depth_scale=1 / scale, num_workers=0)
            augmented = RGBDDataModule(train=str(root), val=str(root), depth_scale=1 / scale, num_workers=0,
                                       train_transforms=[{"name": "RandomCrop", "height": crop[0], "width": crop[1]},
                                                         {"name": "HorizontalFlip", "p": 0.5}])
            for dm in (plain, augmented):
                dm.dataset("train")[0]  # list the folder once, outside the timing
            base = rate(bare, args.frames, args.repeats)
            ours = rate(lambda i: plain.dataset("val")[i], args.frames, args.repeats)
            aug = rate(lambda i: augmented.dataset("train")[i], args.frames, args.repeats)
            rows.append((name, base, ours, aug))
    print(f"own-data loading, one worker, {args.frames} frames, best of {args.repeats} "
          f"({platform.processor() or platform.machine()}, torch {torch.__version__}, OpenCV {cv2.__version__})\n")
    print("| frames | bare decode (samples/s) | RGBDDataset[i] | ratio | + RandomCrop + flip | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, base, ours, aug in rows:
        print(f"| {name} | {base:.1f} | {ours:.1f} | {ours / base:.2f} | {aug:.1f} | {aug / base:.2f} |")


if __name__ == "__main__":
    main()
