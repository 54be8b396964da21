"""Data loading throughput: samples/s of ONE worker through the whole pipeline, and the worker budget.

    python benchmarks/bench_data.py                # writes a temp tree, prints a Markdown table
    python benchmarks/bench_data.py --frames 32 --repeats 3 --gpu-samples-per-s 500

What is timed: ``dataset[i]`` of depthlab's own data sets in one process with one OpenCV thread
(what each DataLoader worker does): file reads (page cache warm), PNG/JPEG decoding (or the h5py
read of a .mat frame), calibration, KB crop, the augmentation of ``configs/{kitti,nyu}.yaml`` and
the conversion to tensors. Synthetic files of the real sizes: KITTI 375x1242 RGB PNGs with texture
and noise (so they compress like camera images) and uint16 depth PNGs with ~15 % valid pixels;
NYU 480x640 JPGs with 16-bit millimetre PNGs, and a labeled-.mat-layout HDF5 file.

The budget: workers per GPU = ceil(GPU training throughput / per-worker throughput). Without
``--measure-gpu`` on a CUDA machine, the GPU throughput is an ASSUMPTION derived from NVIDIA's
published ResNet-50 training rate (DeepLearningExamples, PyTorch ConvNets resnet50v1.5 README:
1x A100 80GB, mixed precision, 2470 img/s at 224x224), divided by the ratio of forward FLOPs of
depthlab's U-Net/ResNet-50 at the training crop to ResNet-50 at 224x224 (both counted here with
torch.utils.flop_counter). Equal GPU efficiency is assumed; the decoder's high-resolution layers
are usually less efficient, so the real rate is likely lower and the budget errs on the safe side.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
RESNET50_A100_AMP_IMG_S = 2470.0  # NVIDIA DeepLearningExamples resnet50v1.5 (PyTorch), 1x A100 80GB, AMP
GPUS_PER_NODE = 4


def camera_like(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth texture plus sensor-like noise: compresses about as well as a real photo."""
    low = cv2.resize(rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8), (width, height),
                     interpolation=cv2.INTER_CUBIC).astype(np.int16)
    return np.clip(low + rng.normal(0, 6, low.shape), 0, 255).astype(np.uint8)


def sparse_depth(height: int, width: int, rng: np.random.Generator, scale: float, density: float) -> np.ndarray:
    v, u = np.mgrid[0:height, 0:width]
    depth = (2 + 40 * v / height + 5 * np.sin(u / 50.0)) * scale
    depth[rng.random((height, width)) > density] = 0
    return depth.astype(np.uint16)


def write_kitti(root: Path, frames: int, rng: np.random.Generator) -> Path:
    date, drive = "2011_09_26", "2011_09_26_drive_0001_sync"
    p02 = "7.215377e+02 0 6.095593e+02 4.485728e+01 0 7.215377e+02 1.728540e+02 2.163791e-01 0 0 1 2.745884e-03"
    p03 = "7.215377e+02 0 6.095593e+02 -3.395242e+02 0 7.215377e+02 1.728540e+02 2.199936e+00 0 0 1 2.729905e-03"
    (root / "raw" / date).mkdir(parents=True)
    (root / "raw" / date / "calib_cam_to_cam.txt").write_text(f"P_rect_02: {p02}\nP_rect_03: {p03}\n")
    lines = []
    for n in range(frames):
        name = f"{n:010d}.png"
        for cam in ("image_02", "image_03"):
            image = root / "raw" / date / drive / cam / "data" / name
            image.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(image), camera_like(375, 1242, rng))
            gt = root / "gt" / drive / "proj_depth" / "groundtruth" / cam / name
            gt.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(gt), sparse_depth(375, 1242, rng, 256, 0.15))
        lines.append(f"{date}/{drive}/image_02/data/{name} {drive}/proj_depth/groundtruth/image_02/{name} 721.5377")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root


def write_nyu(root: Path, frames: int, rng: np.random.Generator) -> Path:
    lines = []
    (root / "scene").mkdir(parents=True)
    with h5py.File(root / "labeled.mat", "w", userblock_size=512) as f:
        images = f.create_dataset("images", (frames, 3, 640, 480), np.uint8)
        depths = f.create_dataset("depths", (frames, 640, 480), np.float32)
        f.create_dataset("rawDepths", (frames, 640, 480), np.float32)
        for k in range(frames):
            image = camera_like(480, 640, rng)
            depth_mm = sparse_depth(480, 640, rng, 200, 0.9)
            cv2.imwrite(str(root / "scene" / f"rgb_{k:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(str(root / "scene" / f"sync_depth_{k:05d}.png"), depth_mm)
            images[k] = image.transpose(2, 1, 0)
            depths[k] = (depth_mm / 1000.0).T
            lines.append(f"/scene/rgb_{k:05d}.jpg /scene/sync_depth_{k:05d}.png 518.8579")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    import scipy.io

    scipy.io.savemat(root / "splits.mat", {"trainNdxs": np.arange(1, frames + 1, dtype=np.uint16)[:, None],
                                           "testNdxs": np.arange(1, frames + 1, dtype=np.uint16)[:, None]})
    return root


def train_transforms(config: str) -> list[dict]:
    return yaml.safe_load((REPO / "configs" / config).read_text())["data"]["init_args"]["train_transforms"]


def per_worker_rate(dataset, repeats: int) -> float:
    """Samples/s of one process calling dataset[i] (one warm-up pass first)."""
    for i in range(min(2, len(dataset))):
        dataset[i]
    start = time.perf_counter()
    for _ in range(repeats):
        for i in range(len(dataset)):
            dataset[i]
    return repeats * len(dataset) / (time.perf_counter() - start)


def forward_gflops(net: torch.nn.Module, height: int, width: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    net.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, height, width))
    return counter.get_total_flops() / 1e9


def unet_resnet50() -> torch.nn.Module:
    from depthlab import models

    spec = {"name": "unet", "encoder": "resnet50", "pretrained": False, "decoder_channels": [256, 128, 64, 32, 16]}
    return models.build(spec, min_depth=1e-3, max_depth=80.0)


def assumed_gpu_rate(crops: dict[str, tuple[int, int]]) -> tuple[dict[str, float], str]:
    import timm

    reference = forward_gflops(timm.create_model("resnet50", pretrained=False), 224, 224)
    net = unet_resnet50()
    rates, notes = {}, []
    for name, (h, w) in crops.items():
        gflops = forward_gflops(net, h, w)
        rates[name] = RESNET50_A100_AMP_IMG_S * reference / gflops
        notes.append(f"{name} {h}x{w}: {gflops:.1f} GFLOPs/forward vs ResNet-50@224 {reference:.2f} "
                     f"-> {rates[name]:.0f} samples/s")
    return rates, ("ASSUMED (not measured): 1x A100 80GB AMP ResNet-50 training rate 2470 img/s "
                   "(NVIDIA DeepLearningExamples) scaled by forward FLOPs; " + "; ".join(notes))


def measured_gpu_rate(crops: dict[str, tuple[int, int]], batch: int = 8, steps: int = 20) -> tuple[dict[str, float], str]:
    net = unet_resnet50().cuda().to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    rates = {}
    for name, (h, w) in crops.items():
        x = torch.rand(batch, 3, h, w, device="cuda").to(memory_format=torch.channels_last)
        y = torch.rand(batch, 1, h, w, device="cuda") * 10 + 0.1
        for i in range(steps + 5):
            if i == 5:
                torch.cuda.synchronize()
                start = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = (net(x).float() - y).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        rates[name] = steps * batch / (time.perf_counter() - start)
    return rates, f"MEASURED on {torch.cuda.get_device_name()}: U-Net/ResNet-50 train steps, batch {batch}, bf16 autocast"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=16, help="frames written per data set (default 16)")
    parser.add_argument("--repeats", type=int, default=2, help="passes over the frames (default 2)")
    parser.add_argument("--gpu-samples-per-s", type=float, default=None,
                        help="use this training throughput per GPU instead of the FLOP-scaled assumption")
    parser.add_argument("--measure-gpu", action="store_true", help="measure the U-Net/ResNet-50 rate on CUDA")
    args = parser.parse_args(argv)

    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    cv2.setNumThreads(1)  # as in a DataLoader worker (depthlab's worker_init_fn)
    torch.set_num_threads(1)
    from depthlab.data.kitti import KITTIDataset
    from depthlab.data.nyu import NYUListDataset, NYUMatDataset, read_nyu_splits
    from depthlab.data.transforms import DepthAugment

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="depthlab-bench-") as tmp:
        kitti = write_kitti(Path(tmp) / "kitti", args.frames, rng)
        nyu = write_nyu(Path(tmp) / "nyu", args.frames, rng)
        kitti_aug = DepthAugment.from_config(train_transforms("kitti.yaml"))
        nyu_aug = DepthAugment.from_config(train_transforms("nyu.yaml"))
        frames = read_nyu_splits(nyu / "splits.mat")["train"]
        png_kb = np.mean([p.stat().st_size for p in (kitti / "raw").rglob("*.png")]) / 1024
        cases = [  # (name, dataset, GPU crop key)
            ("KITTI train, stereo (2 RGB + 2 depth PNGs), KB crop + aug", KITTIDataset(
                kitti / "list.txt", kitti / "raw", kitti / "gt", stereo=True, augment=kitti_aug), "kitti"),
            ("KITTI train, mono (RGB + depth PNG), KB crop + aug", KITTIDataset(
                kitti / "list.txt", kitti / "raw", kitti / "gt", augment=kitti_aug), "kitti"),
            ("KITTI eval, mono full frame, no aug", KITTIDataset(
                kitti / "list.txt", kitti / "raw", kitti / "gt", kb_crop=False), None),
            ("NYU train, labeled .mat (h5py) + aug", NYUMatDataset(nyu / "labeled.mat", frames, "depths", nyu_aug),
             "nyu"),
            ("NYU train, JPG + 16-bit PNG list + aug", NYUListDataset(nyu / "list.txt", nyu, nyu_aug), "nyu"),
            ("NYU eval, .mat rawDepths, no aug", NYUMatDataset(nyu / "labeled.mat", frames, "rawDepths"), None),
        ]
        rates = [(name, per_worker_rate(ds, args.repeats), key) for name, ds, key in cases]

    crops = {"kitti": (352, 704), "nyu": (416, 544)}  # training crops of configs/kitti.yaml, configs/nyu.yaml
    if args.gpu_samples_per_s:
        gpu = dict.fromkeys(crops, args.gpu_samples_per_s)
        source = f"GIVEN (--gpu-samples-per-s): {args.gpu_samples_per_s:g} samples/s per GPU"
    elif args.measure_gpu and torch.cuda.is_available():
        torch.set_num_threads(os.cpu_count() or 1)
        gpu, source = measured_gpu_rate(crops)
    else:
        torch.set_num_threads(os.cpu_count() or 1)
        gpu, source = assumed_gpu_rate(crops)

    print(f"# depthlab data loading: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
          f"torch {torch.__version__}, OpenCV {cv2.__version__}; {args.frames} frames x {args.repeats} passes, "
          f"page cache warm; KITTI RGB PNG {png_kb:.0f} KiB average")
    print(f"# GPU training throughput per GPU: {source}")
    print()
    print("| pipeline (one worker, one OpenCV thread) | samples/s per worker | ms/sample | GPU samples/s "
          f"| workers per GPU | workers per {GPUS_PER_NODE}-GPU node |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rate, key in rates:
        if key is None:
            print(f"| {name} | {rate:.1f} | {1000 / rate:.1f} | - | - | - |")
            continue
        per_gpu = math.ceil(gpu[key] / rate)
        print(f"| {name} | {rate:.1f} | {1000 / rate:.1f} | {gpu[key]:.0f} | {per_gpu} | {GPUS_PER_NODE * per_gpu} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
