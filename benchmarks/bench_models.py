"""Training throughput and peak memory of every registered depthlab network.

    .venv/bin/python benchmarks/bench_models.py                      # all networks, 240x320 and 352x704
    .venv/bin/python benchmarks/bench_models.py --networks glpn --sizes 240x320 --steps 5

One training step = forward, SiLog loss, backward, AdamW step, on random images and depths, each
network with its default arguments; images/s = batch / median step time (the median resists other
processes sharing the machine). Every (network, size, device) runs in a fresh subprocess so
that peak memory is its own:

- CPU: peak resident set size of that process (``ru_maxrss``, includes Python, torch and timm,
  about 1 GiB before training) and the training increment over the RSS right after building the
  network (activations, gradients, optimiser state);
- GPU (when CUDA is available): ``torch.cuda.max_memory_allocated`` during training.

Prints a Markdown table (paste it into docs/models.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time


def rss_mib() -> float:
    """The process's resident set size now (MiB); bench_hf.py uses it too."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def worker(name: str, height: int, width: int, device: str, batch: int, steps: int, warmup: int) -> dict:
    import torch

    from depthlab import models
    from depthlab.losses.silog import silog

    torch.manual_seed(0)
    net = models.build(name, min_depth=1e-3, max_depth=10.0).to(device).train()
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    image = torch.rand(batch, 3, height, width, device=device)
    gt = torch.rand(batch, 1, height, width, device=device) * 9 + 0.5
    mask = torch.ones_like(gt, dtype=torch.bool)

    def step() -> None:
        loss = silog(net(image).depth, gt, mask)  # networks return a DepthOutput; depth is metres
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    rss_before = rss_mib()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    median = sorted(times)[len(times) // 2]  # robust to other processes sharing the CPU
    result = {
        "network": name,
        "size": f"{height}x{width}",
        "device": device,
        "batch": batch,
        "images_per_s": batch / median,
        "parameters_M": sum(p.numel() for p in net.parameters()) / 1e6,
    }
    if device == "cuda":
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        result["peak_mib"] = peak
        result["train_increment_mib"] = peak - rss_before
    return result


def run_one(name: str, size: tuple[int, int], device: str, args: argparse.Namespace) -> dict | None:
    cmd = [
        sys.executable, __file__, "--worker", name, f"{size[0]}x{size[1]}", device,
        "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
    ]
    return run_worker(cmd, f"{name} {size} {device}")


def run_worker(cmd: list[str], what: str) -> dict | None:
    """Run one benchmark worker in a fresh process (its peak memory is its own) and read the JSON of its
    last output line; None, with its error output, when it failed."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"# {what} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="*", help="default: every registered network")
    parser.add_argument("--sizes", nargs="*", default=["240x320", "352x704"], help="HxW")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps (throughput from the median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--devices", nargs="*", help="default: cpu, and cuda when available")
    parser.add_argument("--worker", nargs=3, metavar=("NET", "HxW", "DEVICE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        name, size, device = args.worker
        h, w = (int(v) for v in size.split("x"))
        print(json.dumps(worker(name, h, w, device, args.batch, args.steps, args.warmup)))
        return 0

    import torch

    from depthlab import models

    networks = args.networks or models.available()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    gpu_name = torch.cuda.get_device_name(0) if "cuda" in devices else "no CUDA device here"
    print(
        f"# CPU: {cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads; "
        f"GPU: {gpu_name}; torch {torch.__version__}; batch {args.batch}, {args.steps} timed steps "
        f"after {args.warmup} warm-up, default arguments of each network"
    )
    print("| network | params (M) | input HxW | CPU train img/s | CPU peak RSS (MiB) | CPU training increment (MiB) | GPU train img/s | GPU peak allocated (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in networks:
        for size in sizes:
            res = {d: run_one(name, size, d, args) for d in devices}
            cpu, gpu = res.get("cpu"), res.get("cuda")
            params = next((r["parameters_M"] for r in res.values() if r), float("nan"))
            cells = [
                f"{cpu['images_per_s']:.2f}" if cpu else "n/a",
                f"{cpu['peak_mib']:.0f}" if cpu else "n/a",
                f"{cpu['train_increment_mib']:.0f}" if cpu else "n/a",
                f"{gpu['images_per_s']:.1f}" if gpu else "n/a",
                f"{gpu['peak_mib']:.0f}" if gpu else "n/a",
            ]
            print(f"| {name} | {params:.1f} | {size[0]}x{size[1]} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
