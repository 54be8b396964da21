"""What does an atomic checkpoint save cost? The main job's network and its AdamW state, saved a few times.

    python benchmarks/bench_checkpoint.py [--repeats 5] [--dir .]

Rows, each timed on the same checkpoint in interleaved rounds (a busy machine slows all alike):

- ``torch.save`` straight to the path: the baseline; not atomic (a kill mid-write leaves a cut file
  at the path) and not durable (the data may still be in the page cache when the call returns);
- the same plus ``fsync``: durable, not atomic, to see what the disk flush alone costs;
- Lightning's ``TorchCheckpointIO`` (its default): serialises into memory, then writes through an
  ``fsspec`` transaction staged in the system temp dir and moved onto the path;
- depthlab's ``AtomicCheckpointIO`` (the CLI's default): ``<path>.tmp`` beside the checkpoint,
  ``fsync``, ``os.replace``, directory ``fsync``.

Prints the checkpoint size, the median time per save and its ratio to the plain ``torch.save``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from depthlab.checkpointing import AtomicCheckpointIO
from depthlab.module import DepthModule


def main_job_checkpoint() -> dict:
    """The main job's network (U-Net, resnet18, decoder 128-64-32-16) and AdamW state after one step."""
    model = DepthModule(net={"name": "unet", "encoder": "resnet18", "decoder_channels": [128, 64, 32, 16]})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.rand(2, 3, 96, 128)).depth.mean().backward()
    optimizer.step()
    return {"state_dict": model.state_dict(), "optimizer_states": [optimizer.state_dict()],
            "pytorch-lightning_version": "bench", "global_step": 1}


def plain(checkpoint: dict, path: str) -> None:
    torch.save(checkpoint, path)


def plain_fsync(checkpoint: dict, path: str) -> None:
    with open(path, "wb") as f:
        torch.save(checkpoint, f)
        f.flush()
        os.fsync(f.fileno())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", default=".", help="where to write (the file system of your checkpoints)")
    args = parser.parse_args()

    checkpoint = main_job_checkpoint()
    savers = {
        "torch.save to the path (not atomic)": plain,
        "torch.save + fsync (not atomic)": plain_fsync,
        "Lightning TorchCheckpointIO (default)": TorchCheckpointIO().save_checkpoint,
        "depthlab AtomicCheckpointIO": AtomicCheckpointIO().save_checkpoint,
    }
    work = tempfile.mkdtemp(prefix="bench_checkpoint_", dir=args.dir)
    try:
        times: dict[str, list[float]] = {name: [] for name in savers}
        for round_ in range(args.repeats + 1):  # round 0 warms up (page cache, allocator)
            for name, save in savers.items():
                path = os.path.join(work, "last.ckpt")
                start = time.perf_counter()
                save(checkpoint, path)
                if round_:
                    times[name].append(time.perf_counter() - start)
        size_mb = os.path.getsize(os.path.join(work, "last.ckpt")) / 2**20
    finally:
        shutil.rmtree(work)

    base = statistics.median(times["torch.save to the path (not atomic)"])
    print(f"checkpoint {size_mb:.0f} MB (main job's network + AdamW state), {args.repeats} saves each, "
          f"median; directory {os.path.abspath(args.dir)}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'save':<40} {'ms':>8} {'MB/s':>8} {'ratio':>7}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<40} {median * 1e3:>8.0f} {size_mb / median:>8.0f} {median / base:>7.2f}")


if __name__ == "__main__":
    main()
