"""One GPU check: training throughput and peak memory of depthlab's networks, the loader against the step rate, DDP.

    python benchmarks/bench_gpu.py --json bench_gpu.json --table bench_gpu.md      # CUDA, the stated sizes
    python benchmarks/bench_gpu.py --tiny --json /tmp/bench_gpu.json               # CPU, tiny sizes, seconds
    bash benchmarks/run_gpu.sh                                                     # on a lent GPU machine (docs/gpu.md)

What runs, each configuration for ``--budget_s`` seconds after ``--warmup`` steps (time-budgeted
repeats, so the whole check ends in a known time; ``--deadline_s`` skips what would not fit):

- **Training throughput** (images/s) and **peak memory** (``torch.cuda.max_memory_allocated``)
  of three networks, through the project's own :class:`depthlab.module.DepthModule` and a
  ``lightning.Trainer`` (what ``depthlab fit`` runs; SiLog loss, AdamW, warm-up + cosine):

  - ``unet_r18``: U-Net on ResNet-18 (decoder 256-128-64-32-16) at 192x640, batch 12 (Monodepth2's
    size and batch, supervised here);
  - ``unet_r50``: ``configs/kitti.yaml``'s U-Net on ResNet-50 at its 352x704 crops, batch 8;
  - ``da_v2_small``: the Depth Anything V2 Small architecture (the ``hf`` network built from
    ``benchmarks/bench_hf.py``'s :data:`DEPTH_ANYTHING_V2_SMALL` config, random weights, no
    download, metric head) at 518x518, batch 4 (``configs/finetune_depth_anything_nyu.yaml``).

  Each in ``32-true`` and ``bf16-mixed`` (Lightning's ``trainer.precision``), and under bf16 with
  ``depthlab.callbacks.PerformanceOptions(channels_last=True)``, with
  ``PerformanceOptions(compile=True)`` (``torch.compile``, inductor; its warm-up holds the
  compilation) and with the non-finite guard off (``model.max_nonfinite: 0``; on is the default).
  The batches are made once on the training device and fed again and again, so these rows are the
  step rate without data loading. Logging, checkpointing and the progress bar are off.
- **Loader**: ``depthlab.data.KITTIDataModule``'s training DataLoader (``configs/kitti.yaml``'s
  augmentation: KB crop, rotate, crop to the unet_r50 size, flip, colour) over a synthetic
  KITTI-format tree written to a temp dir (``tests/data/data_trees.py``'s calibration and PNG
  writers; 375x1242 RGB PNGs that compress like camera images, ``benchmarks/bench_data.py``'s
  ``camera_like``, and sparse uint16 depth PNGs): images/s with 1, 2, 4, ... workers up to the CPU
  count, per worker, and against each network's best GPU rate: how many workers keep the GPU fed.
  Then **loader -> GPU**: unet_r50 bf16 trained from that loader (``trainer.fit(module,
  datamodule=...)``, pinned memory and the host-to-device copy included) against the same
  configuration on resident batches: does loading starve the GPU.
- **DDP**: unet_r50 bf16 on all visible CUDA devices (``strategy: ddp``, batch per device) against
  one, where there are several; otherwise the row says how many there are.

Every row is ``ok`` with its numbers, ``skipped`` with the reason (e.g. ``torch.compile``
on the CPU, where inductor's C++ compilation takes minutes; DDP on one device) or
``failed`` with the error (an out-of-memory, a missing package); one failure does not stop the
others. The JSON file is rewritten after every row, so a run cut short keeps what it measured.

``--tiny``: the same code path on the CPU with small networks of the same classes (:func:`networks`),
32x64 and 28x28 inputs, batch 2, 0.1 s per configuration, one loader worker, one thread; the test
suite runs it (tests/test_bench_gpu.py).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
for _path in (BENCH_DIR, REPO / "tests" / "data"):  # bench_hf, bench_data; tests/data/data_trees.py
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

MIN_DEPTH, MAX_DEPTH = 1e-3, 80.0  # configs/kitti.yaml
LR = 1e-4
KITTI_DATE, KITTI_DRIVE = "2011_09_26", "2011_09_26_drive_0001_sync"
KITTI_FRAME = (375, 1242)  # 2011_09_26's image size


@dataclass(frozen=True)
class Network:
    key: str
    spec: dict[str, Any]
    size: tuple[int, int]
    batch: int
    about: str


def networks(tiny: bool) -> list[Network]:
    """The three networks at the stated sizes; with ``tiny``, small versions of each for the CPU run
    (the same classes and code path: timm's 0.4M-parameter ``test_resnet`` encoder for both U-Nets,
    a 4-layer, 32-wide DINOv2 for Depth Anything), 32x64 and 28x28 inputs, batch 2."""
    from bench_hf import DEPTH_ANYTHING_V2_SMALL

    decoder = [256, 128, 64, 32, 16]
    da = DEPTH_ANYTHING_V2_SMALL
    if tiny:
        r18 = r50 = {"name": "unet", "encoder": "test_resnet", "pretrained": False, "decoder_channels": [8, 8, 8, 8]}
        da = {**da, "backbone_config": {**da["backbone_config"], "hidden_size": 32, "num_hidden_layers": 4,
                                        "num_attention_heads": 2,
                                        "out_features": ["stage1", "stage2", "stage3", "stage4"]},
              "reassemble_hidden_size": 32, "neck_hidden_sizes": [8, 8, 16, 16], "fusion_hidden_size": 8,
              "head_hidden_size": 8}
        sizes = {"unet_r18": (32, 64), "unet_r50": (32, 64), "da_v2_small": (28, 28)}
        batches = dict.fromkeys(sizes, 2)
    else:
        r18 = {"name": "unet", "encoder": "resnet18", "pretrained": False, "decoder_channels": decoder}
        r50 = {"name": "unet", "encoder": "resnet50", "pretrained": False, "decoder_channels": decoder}
        sizes = {"unet_r18": (192, 640), "unet_r50": (352, 704), "da_v2_small": (518, 518)}
        batches = {"unet_r18": 12, "unet_r50": 8, "da_v2_small": 4}
    hf = {"class_path": "depthlab.models.hf.HFDepthNetwork",
          "init_args": {"config": da, "kind": "metric", "input_size": list(sizes["da_v2_small"])}}
    return [
        Network("unet_r18", r18, sizes["unet_r18"], batches["unet_r18"], "U-Net ResNet-18, Monodepth2's size"),
        Network("unet_r50", r50, sizes["unet_r50"], batches["unet_r50"], "U-Net ResNet-50, configs/kitti.yaml"),
        Network("da_v2_small", hf, sizes["da_v2_small"], batches["da_v2_small"],
                "Depth Anything V2 Small architecture (hf, random weights)"),
    ]


@dataclass(frozen=True)
class TrainConfig:
    network: Network
    precision: str = "bf16-mixed"
    channels_last: bool = False
    compile: bool = False
    guard: bool = True

    @property
    def name(self) -> str:
        extras = ["channels_last"] * self.channels_last + ["compile"] * self.compile + ["guard off"] * (not self.guard)
        return " ".join([self.network.key, self.precision, *extras])


@dataclass
class Row:
    """One line of the table and of the JSON file's ``rows``."""

    section: str  # train | loader | loader_fit | ddp
    name: str
    status: str = "ok"  # ok | skipped | failed
    reason: str | None = None
    network: str | None = None
    input: list[int] | None = None
    batch: int | None = None
    precision: str | None = None
    channels_last: bool | None = None
    compile: bool | None = None
    guard: bool | None = None
    workers: int | None = None
    devices: int | None = None
    images_per_s: float | None = None
    ms_per_step: float | None = None
    steps: int | None = None
    seconds: float | None = None
    warmup_s: float | None = None
    peak_mem_mib: float | None = None
    peak_reserved_mib: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# -- measurement -------------------------------------------------------------------------------------


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class StepTimer:
    """Times the training steps after ``warmup`` ones, and stops the run after ``budget_s`` seconds of
    them (at least ``min_steps``) or after exactly ``steps`` of them; :meth:`callback` is the Lightning
    callback that calls it.

    Timing starts and ends on a synchronised device; in between the host may run ahead of the GPU
    (as in a real run), and the closing synchronisation makes the interval cover every step counted.
    """

    def __init__(self, device: str, warmup: int, budget_s: float = math.inf, min_steps: int = 3,
                 steps: int | None = None) -> None:
        self.device, self.warmup, self.budget_s, self.min_steps, self.steps = device, warmup, budget_s, min_steps, steps
        self.done = 0
        self.t0 = self.started = math.nan
        self.measured: tuple[int, float] | None = None  # (steps, seconds)

    def callback(self):  # a fresh L.Callback subclass instance (lightning is imported lazily)
        import lightning as L

        timer = self

        class _Timer(L.Callback):
            def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
                timer.started = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
                timer.on_step_end(trainer)

        return _Timer()

    def on_step_end(self, trainer: Any) -> None:
        self.done += 1
        if self.done == self.warmup:
            synchronize(self.device)
            self.t0 = time.perf_counter()
            return
        n = self.done - self.warmup
        if n <= 0 or self.measured is not None:
            return
        if (self.steps is not None and n >= self.steps) or \
                (self.steps is None and n >= self.min_steps and time.perf_counter() - self.t0 >= self.budget_s):
            synchronize(self.device)
            self.measured = (n, time.perf_counter() - self.t0)
            trainer.should_stop = True

    @property
    def warmup_s(self) -> float:
        return self.t0 - self.started


class ResidentBatches(torch.utils.data.IterableDataset):
    """``count`` random batches made once on the training device (the current CUDA device of each
    DDP process) and yielded again and again: the training step without data loading."""

    def __init__(self, batch: int, size: tuple[int, int], device: str, count: int = 2) -> None:
        self.batch, self.size, self.device, self.count = batch, size, device, count

    def __iter__(self):
        device = torch.device("cuda", torch.cuda.current_device()) if self.device == "cuda" else torch.device("cpu")
        gen = torch.Generator().manual_seed(0)
        batches = []
        for k in range(self.count):
            shape = (self.batch, 1, *self.size)
            batches.append({
                "image": torch.rand(self.batch, 3, *self.size, generator=gen).to(device),
                "depth": (1 + (MAX_DEPTH - 2) * torch.rand(shape, generator=gen)).to(device),
                "index": torch.arange(k * self.batch, (k + 1) * self.batch).to(device),
            })
        while True:
            for b in batches:
                yield dict(b)  # PerformanceOptions replaces "image" in the dict it gets


def build_module(config: TrainConfig):
    from depthlab.module import DepthModule

    torch.manual_seed(0)
    return DepthModule(net=config.network.spec, loss="silog", min_depth=MIN_DEPTH, max_depth=MAX_DEPTH, lr=LR,
                       weight_decay=0.01, max_nonfinite=10 if config.guard else 0)


def make_trainer(config: TrainConfig, device: str, timer: StepTimer, root: str, devices: int = 1,
                 strategy: str = "auto"):
    import lightning as L

    from depthlab.callbacks import PerformanceOptions

    return L.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu", devices=devices, strategy=strategy,
        precision=config.precision, max_steps=10**6, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        default_root_dir=root,
        callbacks=[PerformanceOptions(channels_last=config.channels_last, compile=config.compile), timer.callback()],
    )


def fill_measured(row: Row, timer: StepTimer, images_per_step: int, device: str) -> Row:
    if timer.measured is None:
        raise RuntimeError(f"the run ended after {timer.done} steps, before {timer.warmup} warm-up steps and the "
                           "measured ones")
    steps, seconds = timer.measured
    row.steps, row.seconds, row.warmup_s = steps, seconds, timer.warmup_s
    row.ms_per_step = 1000 * seconds / steps
    row.images_per_s = steps * images_per_step / seconds
    if device == "cuda":
        row.peak_mem_mib = torch.cuda.max_memory_allocated() / 2**20
        row.peak_reserved_mib = torch.cuda.max_memory_reserved() / 2**20
    return row


def reset_device(device: str) -> None:
    if device == "cuda":  # the last configuration's memory back to the device (gc: a second on the CPU, unneeded)
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def config_row(section: str, config: TrainConfig) -> Row:
    net = config.network
    return Row(section, config.name, network=net.key, input=list(net.size), batch=net.batch, precision=config.precision,
               channels_last=config.channels_last, compile=config.compile, guard=config.guard, devices=1)


def train_resident(config: TrainConfig, args: argparse.Namespace) -> Row:
    """One configuration on resident batches through DepthModule + Trainer.fit."""
    from torch.utils.data import DataLoader

    row = config_row("train", config)
    reset_device(args.device)
    timer = StepTimer(args.device, args.warmup, args.budget_s)
    module = build_module(config)
    loader = DataLoader(ResidentBatches(config.network.batch, config.network.size, args.device), batch_size=None)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as root:
        make_trainer(config, args.device, timer, root).fit(module, loader)
    return fill_measured(row, timer, config.network.batch, args.device)


# -- the loader ------------------------------------------------------------------------------------------


def kitti_transforms(size: tuple[int, int]) -> list[dict[str, Any]]:
    """configs/kitti.yaml's training augmentation, its RandomCrop set to ``size``."""
    import yaml

    transforms = yaml.safe_load((REPO / "configs" / "kitti.yaml").read_text())["data"]["init_args"]["train_transforms"]
    return [{**t, "height": size[0], "width": size[1]} if t["name"] == "RandomCrop" else t for t in transforms]


def write_kitti_tree(root: Path, frames: int, lines: int) -> dict[str, str]:
    """A KITTI raw + annotated-depth tree (one drive, ``frames`` distinct frames at 375x1242) and a
    BTS-format list of ``lines`` lines cycling over them. The calibration and PNG writers are the
    test fixtures' (tests/data/data_trees.py); the images compress like camera images
    (bench_data.camera_like), so decoding costs what it costs on KITTI."""
    import numpy as np
    from bench_data import camera_like, sparse_depth
    from data_trees import P_RECT_02, P_RECT_03, write_kitti_calib, write_png

    raw, gt = root / "raw", root / "gt"
    write_kitti_calib(raw, KITTI_DATE, P_RECT_02, P_RECT_03)
    rng = np.random.default_rng(0)
    names = []
    for n in range(frames):
        name = f"{n:010d}.png"
        write_png(raw / KITTI_DATE / KITTI_DRIVE / "image_02" / "data" / name, camera_like(*KITTI_FRAME, rng))
        write_png(gt / KITTI_DRIVE / "proj_depth" / "groundtruth" / "image_02" / name,
                  sparse_depth(*KITTI_FRAME, rng, 256, 0.15))
        names.append(name)
    listing = [f"{KITTI_DATE}/{KITTI_DRIVE}/image_02/data/{names[i % frames]} "
               f"{KITTI_DRIVE}/proj_depth/groundtruth/image_02/{names[i % frames]} {P_RECT_02[0]:.4f}" for i in range(lines)]
    (root / "train.txt").write_text("\n".join(listing) + "\n")
    return {"raw_root": str(raw), "gt_root": str(gt), "train_list": str(root / "train.txt"),
            "val_list": str(root / "train.txt"), "test_list": str(root / "train.txt")}


def kitti_module(tree: dict[str, str], batch: int, workers: int, size: tuple[int, int]):
    from depthlab.data import KITTIDataModule

    return KITTIDataModule(**tree, batch_size=batch, num_workers=workers, train_transforms=kitti_transforms(size))


def loader_rate(tree: dict[str, str], batch: int, workers: int, size: tuple[int, int], budget_s: float) -> Row:
    """Images/s of the module's training DataLoader alone (nothing else in the main process).

    The batches the workers prefetch while starting (``prefetch_factor`` per worker) are taken
    before the clock starts; then the loop takes batches for ``budget_s`` seconds."""
    row = Row("loader", f"KITTI loader, {workers} worker{'s' * (workers != 1)}", workers=workers, batch=batch,
              input=list(size))
    dm = kitti_module(tree, batch, workers, size)
    dm.setup("fit")

    def epochs():  # one epoch after another, as training takes them (the workers persist)
        loader = dm.train_dataloader()
        while True:
            yield from loader

    try:
        batches = epochs()
        for _ in range(2 * workers + 1):
            next(batches)
        start, images, steps = time.perf_counter(), 0, 0
        while steps < 3 or time.perf_counter() - start < budget_s:
            images += next(batches)["image"].shape[0]
            steps += 1
        row.seconds = time.perf_counter() - start
    finally:
        dm.teardown("fit")
    row.steps, row.images_per_s = steps, images / row.seconds
    row.ms_per_step = 1000 * row.seconds / steps
    row.extra["images_per_s_per_worker"] = row.images_per_s / workers
    return row


def loader_fit(config: TrainConfig, tree: dict[str, str], workers: int, args: argparse.Namespace) -> Row:
    """``config`` trained from the KITTI data module (loading, pinning and the copy to the device included)."""
    row = config_row("loader_fit", config)
    row.name, row.workers = f"{config.name} <- KITTI loader, {workers} worker{'s' * (workers != 1)}", workers
    reset_device(args.device)
    timer = StepTimer(args.device, args.warmup + 2 * workers, args.budget_s)  # the prefetched batches too
    module = build_module(config)
    dm = kitti_module(tree, config.network.batch, workers, config.network.size)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as root:
        make_trainer(config, args.device, timer, root).fit(module, datamodule=dm)
    return fill_measured(row, timer, config.network.batch, args.device)


def worker_counts(cpus: int, tiny: bool) -> list[int]:
    if tiny:  # worker processes take about a second each to start and fill on a 2-core machine
        return [1]
    counts = [w for w in (1, 2, 4, 8, 16, 32, 64) if w < cpus]
    return counts + [cpus]


# -- DDP ----------------------------------------------------------------------------------------------------


def ddp_worker(spec_json: str) -> int:
    """Run by ``ddp_row`` in a subprocess; Lightning's DDP launcher starts the other ranks with the
    same command line. Rank 0 writes the measurement to ``spec['out']``."""
    spec = json.loads(spec_json)
    quiet()
    from torch.utils.data import DataLoader

    net = next(n for n in networks(spec["tiny"]) if n.key == spec["network"])
    config = TrainConfig(net, precision=spec["precision"])
    timer = StepTimer(spec["device"], spec["warmup"], steps=spec["steps"])
    module = build_module(config)
    loader = DataLoader(ResidentBatches(net.batch, net.size, spec["device"]), batch_size=None)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-ddp-") as root:
        trainer = make_trainer(config, spec["device"], timer, root, devices=spec["devices"], strategy="ddp")
        if spec["device"] == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer.fit(module, loader)
        if trainer.global_rank == 0:
            row = fill_measured(Row("ddp", ""), timer, net.batch * spec["devices"], spec["device"])
            Path(spec["out"]).write_text(json.dumps(asdict(row)))
    return 0


def ddp_devices(args: argparse.Namespace) -> int:
    return args.ddp_devices or (torch.cuda.device_count() if args.device == "cuda" else 0)


def ddp_row(config: TrainConfig, one: Row | None, args: argparse.Namespace) -> Row:
    """DDP on ``ddp_devices(args)`` devices, timed over as many steps as ``one`` (the same configuration on
    one device) took in ``--budget_s``, in a subprocess whose ranks Lightning's DDP launcher starts."""
    count = ddp_devices(args)
    row = config_row("ddp", config)
    row.devices = count
    row.name = f"{config.name}, DDP on {count} device{'s' * (count != 1)} (batch {config.network.batch} per device)"
    if count < 2:
        what = f"{count} visible CUDA device" + "s" * (count != 1) if args.device == "cuda" else "the CPU run"
        return skip(row, f"{what}: DDP against one device needs 2 or more (the lent machines have one GPU)")
    if one is None or one.status != "ok":
        return skip(row, "the one-device run of this configuration did not run, nothing to compare with")
    # A fixed number of steps (every rank must stop at the same one): the one-device rate x budget.
    steps = max(5, round(args.budget_s * one.images_per_s / config.network.batch))
    with tempfile.TemporaryDirectory(prefix="bench-gpu-ddp-") as tmp:
        out = Path(tmp) / "rank0.json"
        spec = {"network": config.network.key, "precision": config.precision, "tiny": args.tiny, "device": args.device,
                "devices": count, "warmup": args.warmup, "steps": steps, "out": str(out)}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--ddp_worker", json.dumps(spec)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(120.0, 20 * args.budget_s))
        if proc.returncode or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            return fail(row, f"the DDP run exited {proc.returncode}: {tail[0]}")
        measured = json.loads(out.read_text())
    for key in ("images_per_s", "ms_per_step", "steps", "seconds", "warmup_s", "peak_mem_mib", "peak_reserved_mib"):
        setattr(row, key, measured[key])
    row.extra["scaling_efficiency"] = row.images_per_s / (count * one.images_per_s)
    return row


# -- the run -------------------------------------------------------------------------------------------------


def skip(row: Row, reason: str) -> Row:
    row.status, row.reason = "skipped", reason
    return row


def fail(row: Row, reason: str) -> Row:
    row.status, row.reason = "failed", reason
    return row


def quiet() -> None:
    """Lightning's per-run info lines and the warnings a benchmark run expects (few loader workers for
    resident batches, an iterable without length) would bury the table."""
    import lightning  # noqa: F401 - its import sets its loggers' levels: set them after it

    for name in ("lightning.pytorch", "lightning.fabric", "depthlab"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*Tensor Cores.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning")


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "cuda": torch.version.cuda, "cpus": os.cpu_count()}
    for name in ("lightning", "transformers", "timm", "albumentations", "cv2", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except Exception as exc:  # noqa: BLE001 - the report says what is missing
            out[name] = f"not importable ({type(exc).__name__}: {exc})"
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
        out["gpus"] = torch.cuda.device_count()
        out["cudnn"] = torch.backends.cudnn.version()
    return out


class Report:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.rows, self.start = args, [], time.perf_counter()
        self.env = versions()

    @classmethod
    def load(cls, path: str) -> Report:
        """A report from its JSON file (``--from_json``: the table of a run that was stopped before printing it)."""
        data = json.loads(Path(path).read_text())
        report = cls.__new__(cls)
        settings = data["settings"]
        report.args = argparse.Namespace(device=data["device"], tiny=settings["tiny"], budget_s=settings["budget_s"],
                                         warmup=settings["warmup_steps"], deadline_s=settings["deadline_s"], json=None)
        report.env, report.rows = data["environment"], [Row(**row) for row in data["rows"]]
        report.start = time.perf_counter() - data["total_s"]
        return report

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def run(self, row: Row, measure: Callable[[], Row], needs_s: float = 0.0) -> Row:
        """Measure one row (an exception makes it ``failed``), or skip it past the deadline; print it, save all."""
        left = self.args.deadline_s - self.elapsed()
        if row.status == "ok" and left < needs_s + self.args.budget_s:
            row = skip(row, f"time: {left:.0f} s left of --deadline_s {self.args.deadline_s:g}, this needs about "
                            f"{needs_s + self.args.budget_s:.0f} s")
        elif row.status == "ok":
            # saved first as unfinished: a run stopped from outside (run_gpu.sh's timeout) names the row it cut
            self.rows.append(fail(Row(**{**asdict(row), "status": "ok"}),
                                  "did not finish: the run was stopped during this row"))
            self.save()
            self.rows.pop()
            try:
                row = measure()
            except Exception as exc:  # noqa: BLE001 - one configuration's failure is reported, the rest run
                traceback.print_exc()
                row = fail(row, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
            finally:
                if row.compile:
                    with contextlib.suppress(Exception):
                        torch._dynamo.reset()
        self.rows.append(row)
        print(f"[{self.elapsed():6.1f} s] {row.name}: " + (f"{row.images_per_s:.1f} images/s" if row.status == "ok"
                                                             else f"{row.status}: {row.reason}"), flush=True)
        self.save()
        return row

    def best(self, network: str) -> Row | None:
        ok = [r for r in self.rows if r.section == "train" and r.network == network and r.status == "ok"]
        return max(ok, key=lambda r: r.images_per_s) if ok else None

    def data(self) -> dict[str, Any]:
        a = self.args
        return {
            "benchmark": "benchmarks/bench_gpu.py",
            "device": a.device,
            "environment": self.env,
            "settings": {"tiny": a.tiny, "budget_s": a.budget_s, "warmup_steps": a.warmup, "deadline_s": a.deadline_s},
            "networks": {n.key: {**asdict(n), "size": list(n.size)} for n in networks(a.tiny)},
            "total_s": self.elapsed(),
            "rows": [asdict(r) for r in self.rows],
            "loader_vs_gpu": self.loader_vs_gpu(),
        }

    def loader_vs_gpu(self) -> list[dict[str, Any]]:
        """Per network: its best training rate on resident batches, and the loader workers that match it."""
        loads = sorted((r for r in self.rows if r.section == "loader" and r.status == "ok"), key=lambda r: r.workers)
        out = []
        for net in networks(self.args.tiny):
            best = self.best(net.key)
            if best is None or not loads:
                continue
            enough = next((r.workers for r in loads if r.images_per_s >= best.images_per_s), None)
            per_worker = loads[0].images_per_s / loads[0].workers
            out.append({"network": net.key, "best_config": best.name, "gpu_images_per_s": best.images_per_s,
                        "workers_measured_enough": enough,
                        "max_measured": {"workers": loads[-1].workers, "images_per_s": loads[-1].images_per_s},
                        "workers_estimated": math.ceil(best.images_per_s / per_worker)})
        return out

    def save(self) -> None:
        if self.args.json:
            path = Path(self.args.json)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(self.data(), indent=1, default=str) + "\n")
            tmp.replace(path)

    def table(self) -> str:
        e, a = self.env, self.args
        where = f"{e.get('gpu', 'CPU')} x{e.get('gpus', 0)}" if a.device == "cuda" else f"CPU ({os.cpu_count()} cores)"
        lines = [f"# bench_gpu: {where}; torch {e['torch']} (CUDA {e['cuda']}), lightning {e['lightning']}, "
                 f"transformers {e['transformers']}; {'TINY sizes; ' if a.tiny else ''}{a.warmup} warm-up steps, then "
                 f"{a.budget_s:g} s per configuration; total {self.elapsed():.0f} s",
                 "",
                 "| configuration | input | batch | images/s | ms/step | vs fp32 | peak MiB (reserved) | warm-up s | note |",
                 "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in self.rows:
            if r.section == "loader":
                continue
            size = "x".join(map(str, r.input)) if r.input else ""
            if r.status != "ok":
                lines.append(f"| {r.name} | {size} | {r.batch or ''} | {r.status} | | | | | {r.reason} |")
                continue
            fp32 = next((x for x in self.rows if x.section == "train" and x.network == r.network and x.status == "ok"
                         and x.precision == "32-true"), None)
            vs = f"{r.images_per_s / fp32.images_per_s:.2f}x" if fp32 and r.section == "train" else ""
            mem = f"{r.peak_mem_mib:.0f} ({r.peak_reserved_mib:.0f})" if r.peak_mem_mib is not None else "-"
            note = ""
            if r.section == "loader_fit":
                resident = next((x for x in self.rows if x.section == "train" and x.status == "ok" and x.network ==
                                 r.network and x.precision == r.precision and not x.channels_last and not x.compile
                                 and x.guard), None)
                if resident:
                    note = f"{100 * r.images_per_s / resident.images_per_s:.0f} % of the rate on resident batches"
            elif r.section == "ddp":
                note = f"scaling efficiency {100 * r.extra['scaling_efficiency']:.0f} % (vs devices x one device)"
            lines.append(f"| {r.name} | {size} | {r.batch} | {r.images_per_s:.1f} | {r.ms_per_step:.1f} | {vs} | {mem} | "
                         f"{r.warmup_s:.1f} | {note} |")
        loads = [r for r in self.rows if r.section == "loader"]
        if loads:
            lines += ["", "| KITTI loader (configs/kitti.yaml augmentation) | images/s | per worker | note |",
                      "|---|---:|---:|---|"]
            for r in loads:
                if r.status != "ok":
                    lines.append(f"| {r.name} | {r.status} | | {r.reason} |")
                else:
                    lines.append(f"| {r.name} | {r.images_per_s:.1f} | {r.extra['images_per_s_per_worker']:.1f} | |")
            lines += ["", "| network (best configuration) | GPU images/s | workers that keep up (measured) | "
                          "workers (per-worker estimate) |", "|---|---:|---:|---:|"]
            for v in self.loader_vs_gpu():
                enough = v["workers_measured_enough"] or (f"more than {v['max_measured']['workers']} "
                                                          f"({v['max_measured']['images_per_s']:.0f} images/s)")
                lines.append(f"| {v['network']} ({v['best_config']}) | {v['gpu_images_per_s']:.1f} | {enough} | "
                             f"{v['workers_estimated']} |")
        return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU (the tests' run; seconds)")
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--budget_s", type=float, default=None,
                        help="seconds measured per configuration after the warm-up (default 3; 0.1 with --tiny)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps, not timed (default 3; 1 with --tiny)")
    parser.add_argument("--deadline_s", type=float, default=270.0,
                        help="rows that would end after this many seconds from the start are skipped (default 270)")
    parser.add_argument("--compile_s", type=float, default=75.0,
                        help="time set aside for one torch.compile warm-up when checking the deadline (default 75)")
    parser.add_argument("--only", nargs="*", default=None, metavar="NETWORK", help="only these networks")
    parser.add_argument("--workers", type=int, nargs="*", default=None, help="loader worker counts to measure")
    parser.add_argument("--ddp_devices", type=int, default=0,
                        help="DDP on this many devices of --device (default: every visible CUDA device)")
    parser.add_argument("--json", default="bench_gpu.json", help="the JSON file to write ('' for none)")
    parser.add_argument("--table", default=None, help="also write the Markdown table to this file")
    parser.add_argument("--cpu_compile", action="store_true",
                        help="torch.compile on the CPU too (skipped there by default: minutes of C++ compilation)")
    parser.add_argument("--from_json", metavar="JSON", help="print (and --table: write) the table of this JSON file")
    parser.add_argument("--ddp_worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ddp_worker:
        return ddp_worker(args.ddp_worker)
    if args.from_json:
        table = Report.load(args.from_json).table()
        print(table, end="")
        if args.table:
            Path(args.table).write_text(table)
        return 0
    if args.device == "auto":
        args.device = "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    args.budget_s = args.budget_s if args.budget_s is not None else (0.1 if args.tiny else 3.0)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 3)
    if args.warmup < 1 or args.budget_s <= 0:
        parser.error(f"--warmup must be >= 1 (the clock starts at the end of a step) and --budget_s > 0, got "
                     f"{args.warmup} and {args.budget_s:g}")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if args.tiny:  # a code-path check: two threads on a loaded 2-core machine wait for each other's core
        torch.set_num_threads(1)
    quiet()

    from depthlab import losses, models

    if "unet" not in models.available() or "silog" not in losses.REGISTRY.available():
        parser.error("depthlab's networks and losses are not registered (no installed depthlab metadata with its "
                     "entry points): `pip install -e .` first, or run benchmarks/run_gpu.sh, which writes them")
    report = Report(args)
    nets = [n for n in networks(args.tiny) if args.only is None or n.key in args.only]
    by_key = {n.key: n for n in nets}
    # 1. eager configurations
    for net in nets:
        for config in (TrainConfig(net, "32-true"), TrainConfig(net), TrainConfig(net, guard=False),
                       TrainConfig(net, channels_last=True)):
            report.run(config_row("train", config), lambda c=config: train_resident(c, args), needs_s=2.0)
    # 2. the loader alone, then feeding unet_r50 (configs/kitti.yaml's network and crop)
    loader_net = by_key.get("unet_r50", nets[0] if nets else None)
    if loader_net is not None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        counts = args.workers or worker_counts(cpus, args.tiny)
        with tempfile.TemporaryDirectory(prefix="bench-gpu-kitti-") as tmp:
            frames, lines = (2, 64) if args.tiny else (16, 4096)
            try:
                tree, problem = write_kitti_tree(Path(tmp), frames, lines), None
            except Exception as exc:  # noqa: BLE001 - reported in the loader rows
                traceback.print_exc()
                tree, problem = {}, f"the synthetic KITTI tree could not be written: {type(exc).__name__}: {exc}"
            for w in counts:
                row = Row("loader", f"KITTI loader, {w} worker{'s' * (w != 1)}", workers=w)
                report.run(fail(row, problem) if problem else row,
                           lambda w=w: loader_rate(tree, loader_net.batch, w, loader_net.size, args.budget_s),
                           needs_s=2.0)
            config = TrainConfig(loader_net)
            need = next((v["workers_measured_enough"] for v in report.loader_vs_gpu()
                         if v["network"] == loader_net.key), None)
            workers = need or max(counts)
            row = config_row("loader_fit", config)
            row.name, row.workers = f"{config.name} <- KITTI loader, {workers} worker{'s' * (workers != 1)}", workers
            report.run(fail(row, problem) if problem else row, lambda: loader_fit(config, tree, workers, args),
                       needs_s=5.0)
    # 3. DDP on every visible device against one
    if loader_net is not None:
        config = TrainConfig(loader_net)
        one = next((r for r in report.rows if r.section == "train" and r.name == config.name), None)
        row = ddp_row(config, one, args) if ddp_devices(args) < 2 else config_row("ddp", config)
        report.run(row, lambda: ddp_row(config, one, args), needs_s=30.0)
    # 4. torch.compile last: its warm-up is the longest and the least predictable; the kitti.yaml
    # network first, then Depth Anything, should the deadline leave room for only some
    order = ["unet_r50", "da_v2_small", "unet_r18"]
    for net in sorted(nets, key=lambda n: order.index(n.key)):
        config = TrainConfig(net, compile=True)
        row = config_row("train", config)
        if args.device == "cpu" and not args.cpu_compile:
            row = skip(row, "on the CPU: inductor's C++ compilation takes minutes (--cpu_compile runs it); measured on CUDA")
        else:
            from depthlab.models.performance import compile_unavailable_reason

            reason = compile_unavailable_reason("inductor", args.device)
            if reason:
                row = skip(row, reason)
        report.run(row, lambda c=config: train_resident(c, args), needs_s=args.compile_s)

    report.save()
    table = report.table()
    print()
    print(table, end="")
    if args.table:
        Path(args.table).write_text(table)
    print(f"total {report.elapsed():.1f} s (--budget_s {args.budget_s:g} per configuration, --deadline_s "
          f"{args.deadline_s:g})" + (f"; JSON: {args.json}" if args.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
