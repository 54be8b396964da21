"""Is training ever waiting on the procedural data? Render cost vs training-step cost, one run.

    python benchmarks/bench_synthetic.py [--height 96 --width 128 --batch 8]

Prints the time to render one batch of stereo samples (one process, as one DataLoader worker
does it), and of left views only (what a supervised objective reads: the data module does not
ray cast the right camera then, ``SplitDataModule.require``), next to the time of one training
step of the main job's network on the same batch size, and their ratio. A ratio < 1 means one
worker keeps up with training.
"""

from __future__ import annotations

import argparse
import time

import torch

from depthlab.data.synthetic import SceneConfig, SyntheticStereoDataset, render_sample
from depthlab.module import DepthModule


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    rows = []
    for gt_density in (1.0, 0.1):
        cfg = SceneConfig(height=args.height, width=args.width, gt_density=gt_density)
        counter = iter(range(10**9))
        render = timed(lambda: [render_sample(cfg, 0, "train", next(counter)) for _ in range(args.batch)], args.repeats)
        rows.append((f"render {args.batch} stereo samples (gt_density {gt_density})", render))
    left = SyntheticStereoDataset(SceneConfig(height=args.height, width=args.width), "train", 10**9)
    left.required = frozenset({"image", "depth", "valid"})  # as the main job's SiLog objective requires
    counter = iter(range(10**9))
    rows.append((f"render {args.batch} left views (a supervised objective's)",
                 timed(lambda: [left[next(counter)] for _ in range(args.batch)], args.repeats)))

    model = DepthModule(net={"name": "unet", "encoder": "resnet18", "decoder_channels": [128, 64, 32, 16]})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    cfg = SceneConfig(height=args.height, width=args.width)
    samples = [render_sample(cfg, 0, "train", i) for i in range(args.batch)]
    batch = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}

    def step() -> None:
        opt.zero_grad()
        loss, _ = model.compute_loss(model(batch["image"]), batch)
        loss.backward()
        opt.step()

    train = timed(step, args.repeats)
    rows.append((f"train step, batch {args.batch} (main job's U-Net/resnet18)", train))

    print(f"{args.height}x{args.width}, torch threads {torch.get_num_threads()}")
    print(f"{'what':<55} {'ms':>9}")
    for name, seconds in rows:
        print(f"{name:<55} {seconds * 1e3:>9.1f}")
    print(f"{'ratio render / train step (dense gt)':<55} {rows[0][1] / train:>9.2f}")
    print(f"{'ratio left views / train step':<55} {rows[2][1] / train:>9.2f}")


if __name__ == "__main__":
    main()
