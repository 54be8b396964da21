"""How clearly does the photometric objective single out the true depth on procedural video?

    python benchmarks/photometric_signal.py [--samples 16 --supersample 1 2 --heading 0 25 --speed 0.1 0.2]

For each validation video (frames -1, 0, +1) the target is rebuilt from both neighbours with the
TRUE camera motion and a depth map, and the per-pixel minimum of the two reprojection errors
(Monodepth2's, SSIM + L1) is averaged over the image: for the true depth, for a flat depth at the
true median, and for the true depth doubled. Prints one row per (supersample, heading): the
errors and the ratio flat / true (how much the true depth stands out; higher is a clearer signal).

Auto-masking (Monodepth2): a pixel is left out of the loss where an unwarped neighbour matches the
target at least as well as the warps. ``masked``: the fraction of pixels so left out with the true
depth; ``far near``: the fraction of the farthest quarter of each image left out when the depth
there is 0.3x the truth (a network's too-near far wall): a wrong far depth is mostly masked, so
the loss has no gradient to mend it.
No training, no network: a property of the data alone.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from depthlab.data.synthetic import SceneConfig, render_arrays
from depthlab.geometry import reprojection_error, warp_with_pose


def errors(cfg: SceneConfig, samples: int, speed: tuple[float, float], heading: float) -> dict[str, float]:
    rows: dict[str, list[float]] = {"true": [], "flat": [], "true x2": [], "masked": [], "far near": []}
    for index in range(samples):
        s = {k: torch.as_tensor(np.asarray(v)) for k, v in render_arrays(
            cfg, 0, "val", index, frame_ids=(0, -1, 1), speed_m=speed, heading_deg=heading).items() if k != "index"}
        target = s["image"].permute(2, 0, 1)[None]
        depth = s["depth"][None, None]
        median = depth[depth > 0].median()
        depth = torch.where(depth > 0, depth, median)
        far = depth > torch.quantile(depth.flatten(), 0.75)
        identity = torch.stack([reprojection_error(s[f"image_f{k:+d}"].permute(2, 0, 1)[None], target)
                                for k in (-1, 1)]).min(0).values
        for name, d in (("true", depth), ("flat", torch.full_like(depth, float(median))), ("true x2", 2 * depth),
                        ("far near", torch.where(far, 0.3 * depth, depth))):
            e = torch.stack([reprojection_error(warp_with_pose(s[f"image_f{k:+d}"].permute(2, 0, 1)[None], d,
                                                               s["intrinsics"][None], s[f"pose_f{k:+d}"][None])[0],
                                                target) for k in (-1, 1)]).min(0).values
            if name == "far near":
                rows[name].append(float((identity <= e)[far].float().mean()))
                continue
            rows[name].append(float(e.mean()))
            if name == "true":
                rows["masked"].append(float((identity <= e).float().mean()))
    return {name: float(np.mean(v)) for name, v in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--supersample", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--heading", type=float, nargs="+", default=[0.0])
    parser.add_argument("--speed", type=float, nargs=2, default=[0.1, 0.2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{args.samples} validation videos at {args.height}x{args.width}, speed {args.speed} m a frame; "
          "mean per-pixel minimum reprojection error of the two warped neighbours, true motion")
    head = (f"{'supersample':>11} {'heading':>7} {'true':>7} {'flat':>7} {'true x2':>7} {'flat/true':>9} "
            f"{'masked':>7} {'far near':>8}")
    print(head)
    print("-" * len(head))
    for n in args.supersample:
        cfg = SceneConfig(height=args.height, width=args.width, supersample=n)
        for h in args.heading:
            e = errors(cfg, args.samples, tuple(args.speed), h)
            print(f"{n:>11} {h:>7g} {e['true']:>7.4f} {e['flat']:>7.4f} {e['true x2']:>7.4f} "
                  f"{e['flat'] / e['true']:>9.2f} {e['masked']:>7.3f} {e['far near']:>8.3f}")


if __name__ == "__main__":
    main()
