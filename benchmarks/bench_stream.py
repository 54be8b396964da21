"""Packing and streaming throughput: ``depthlab data pack`` samples/s with 1 and 2 workers, and one
loader process reading the pack (``StreamingDataModule``) against the original module, in one run.

    python benchmarks/bench_stream.py                  # temp folders, a Markdown table and a JSON line
    python benchmarks/bench_stream.py --frames 64 --repeats 3

Cases: own data (``RGBDDataModule``) with NYU-like 480x640 JPGs and millimetre PNGs (the pack stores
the JPEG bytes as they are and depth as float32), and the procedural rooms (``SyntheticDataModule``,
96x128 stereo, the main job's size; the pack stores the rendered float32 images, so streaming skips
the ray casting). Loader rates: batches of 8 through ``train_dataloader()`` with ``num_workers: 0``
(one process does everything, as one DataLoader worker would), no augmentation, page cache warm;
the best of ``--repeats`` epochs. Pack rates include litdata's worker start-up.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import camera_like, sparse_depth  # noqa: E402

from depthlab.data.pack import pack_split  # noqa: E402
from depthlab.data.rgbd import RGBDDataModule  # noqa: E402
from depthlab.data.streaming import StreamingDataModule  # noqa: E402
from depthlab.data.synthetic import SyntheticDataModule  # noqa: E402


def write_own(root: Path, frames: int) -> Path:
    rng = np.random.default_rng(0)
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    for i in range(frames):
        cv2.imwrite(str(root / "rgb" / f"{i:05d}.jpg"), camera_like(480, 640, rng))
        cv2.imwrite(str(root / "depth" / f"{i:05d}.png"), sparse_depth(480, 640, rng, 1000.0, 1.0))
    return root


def loader_rate(module, repeats: int) -> float:
    best, count = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = sum(len(batch["index"]) for batch in module.train_dataloader())
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48, help="samples per case (a multiple of 8)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = {
            "own data 480x640 (JPG + mm PNG)": RGBDDataModule(train=str(write_own(tmp / "own", args.frames)),
                                                              batch_size=8, num_workers=0),
            "procedural 96x128 stereo (rendered)": SyntheticDataModule(train_size=args.frames, batch_size=8,
                                                                       num_workers=0),
        }
        sources = {name: sum(f.stat().st_size for f in (tmp / "own").rglob("*") if f.is_file()) / 2**20
                   if name.startswith("own") else None for name in cases}
        for name, module in cases.items():
            row = {"case": name, "source_MiB": sources[name]}
            for workers in (1, 2):
                report = pack_split(module, "train", str(tmp / f"pack{workers}" / name[:3]), workers=workers,
                                    progress=False)
                row[f"pack_{workers}w"] = report.samples / report.seconds
                row["MiB"] = report.bytes / 2**20
            row["original"] = loader_rate(module, args.repeats)
            streamed = StreamingDataModule(input_dir=str(tmp / "pack2" / name[:3]), batch_size=8, num_workers=0)
            row["streamed"] = loader_rate(streamed, args.repeats)
            rows.append(row)
    print(f"{platform.processor() or platform.machine()}, {args.frames} samples per case, "
          f"best of {args.repeats}\n")
    print("| case | pack, 1 worker (samples/s) | pack, 2 workers | files (MiB) | pack (MiB) "
          "| original loader (samples/s) | streamed loader | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        source = "-" if r["source_MiB"] is None else f"{r['source_MiB']:.1f}"
        print(f"| {r['case']} | {r['pack_1w']:.1f} | {r['pack_2w']:.1f} | {source} | {r['MiB']:.1f} "
              f"| {r['original']:.1f} | {r['streamed']:.1f} | {r['streamed'] / r['original']:.2f} |")
    print(json.dumps({"bench_stream": rows}))


if __name__ == "__main__":
    main()
