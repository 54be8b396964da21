"""The monocular-video training step (configs/synthetic_mono.yaml), timed part by part, this checkout
against another (an older commit exported with ``git archive``), paired in one run.

    python benchmarks/bench_mono_step.py [--tree before=DIR] [--config FILE] [--steps 12 --repeats 3 --batches 3]

One training step of Monodepth2's M as ``depthlab fit --config configs/synthetic_mono.yaml`` runs it
(U-Net on resnet18 with 4 scales, the separate ResNet-18 pose network on 2 pairs, the photometric
loss over 2 warped frames at each scale (and their 2 identities once, where auto-masking is on),
edge smoothness, AdamW), on the same
pre-rendered batches held in memory (data loading left out), in a subprocess per checkout with
``PYTHONPATH`` set to it, the checkouts' order rotated every repeat so that a change of load shows.

Each step is timed in its parts (``depth``: the depth network's forward; ``pose``: the pose
network's; ``loss``: the objective's forward; ``backward``; ``optimizer``), the table gives the
median of each over all steps after ``--warmup``, and ``vs first`` the ratio of the median step to
the first checkout's (``this``, unless ``--tree`` names others first with ``--no-this``).
``--config`` times another configuration's step (the same file for every checkout; default
configs/synthetic_mono.yaml). ``--profile`` prints torch's operator table of this checkout's step
(self CPU time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "synthetic_mono.yaml"
PARTS = ("depth", "pose", "loss", "backward", "optimizer")


def _child(args: argparse.Namespace) -> None:
    """Runs in the checkout under test (``PYTHONPATH``): build, time, print one JSON line."""
    import time

    import lightning as L
    import torch
    import yaml

    import depthlab
    from depthlab.data import SyntheticDataModule
    from depthlab.module import DepthModule

    tree = Path(os.environ["PYTHONPATH"]).resolve()
    if not Path(depthlab.__file__).resolve().is_relative_to(tree):
        raise SystemExit(f"bench_mono_step: imported depthlab from {depthlab.__file__}, not from {tree}")

    config = yaml.safe_load(Path(args.config).read_text())
    L.seed_everything(0, verbose=False)
    module = DepthModule(**config["model"])
    module.setup("fit")
    data = dict(config["data"]["init_args"], num_workers=0, cache=False)
    datamodule = SyntheticDataModule(**data)
    datamodule.setup("fit")
    loader = iter(datamodule.train_dataloader())
    batches = [next(loader) for _ in range(args.batches)]
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    module.train()
    times: dict[str, list[float]] = {part: [] for part in (*PARTS, "step")}

    def step(batch, record: bool) -> None:
        marks = [time.perf_counter()]
        out = module(batch["image"])
        marks.append(time.perf_counter())
        out = module.with_poses(out, batch)
        marks.append(time.perf_counter())
        total, _ = module.compute_loss(out, batch)
        marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        marks.append(time.perf_counter())
        optimizer.step()
        marks.append(time.perf_counter())
        if record:
            for part, start, end in zip(PARTS, marks, marks[1:]):
                times[part].append(end - start)
            times["step"].append(marks[-1] - marks[0])

    for i in range(args.warmup + args.steps):
        step(batches[i % len(batches)], record=i >= args.warmup)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(2):
                step(batches[i % len(batches)], record=False)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
    print(json.dumps({part: statistics.median(values) for part, values in times.items()}))


def _run(tree: Path, args: argparse.Namespace, profile: bool) -> dict[str, float]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--config", str(Path(args.config).resolve()),
               "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batches", str(args.batches)] + (["--profile"] if profile else [])
    env = dict(os.environ, PYTHONPATH=str(tree))
    result = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"bench_mono_step: the step in {tree} failed:\n{result.stderr[-3000:]}")
    if profile:
        print(result.stderr[result.stderr.find("-" * 20):])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                        help="another depthlab checkout to time the same step in (repeatable)")
    parser.add_argument("--no-this", action="store_true", help="time only the --tree checkouts")
    parser.add_argument("--config", default=str(CONFIG), help="the configuration whose step is timed")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)
    trees = [] if args.no_this else [("this", ROOT)]
    for item in args.tree:
        name, sep, path = item.partition("=")
        if not sep or not (Path(path) / "depthlab").is_dir():
            raise SystemExit(f"bench_mono_step: --tree {item!r}: expected NAME=DIR of a depthlab checkout")
        trees.append((name, Path(path).resolve()))
    if not trees:
        raise SystemExit("bench_mono_step: nothing to time (--no-this without --tree)")
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
    for repeat in range(args.repeats):
        order = trees[repeat % len(trees):] + trees[:repeat % len(trees)]
        for name, tree in order:
            results[name].append(_run(tree, args, profile=args.profile and repeat == 0 and name == "this"))
            print(f"repeat {repeat + 1} {name}: {results[name][-1]['step'] * 1000:.0f} ms/step", file=sys.stderr)
    print(f"\n{Path(args.config).name} training step, median ms over {args.steps} steps x {args.repeats} repeats "
          f"(each repeat's median, then their median)\n")
    header = ["checkout", *PARTS, "step", "vs first"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    first = None
    for name, _ in trees:
        row = {part: statistics.median(r[part] for r in results[name]) * 1000 for part in (*PARTS, "step")}
        first = first or row["step"]
        print(f"| {name} | " + " | ".join(f"{row[p]:.0f}" for p in (*PARTS, "step")) + f" | {row['step'] / first:.2f} |")


if __name__ == "__main__":
    main()
