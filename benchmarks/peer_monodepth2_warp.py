"""depthlab's warp by depth and pose beside Monodepth2's own layers, on the same random inputs.

    python benchmarks/peer_monodepth2_warp.py [--mirror /path/to/monodepth2/git/dir] [--seed 0]

Monodepth2's ``layers.py`` is taken from a git copy of its repository (``git show HEAD:layers.py``
into a temporary folder) and imported from there; its BackprojectDepth, Project3D and
transformation_from_parameters are plain torch and run on the CPU. Printed, as max abs differences
on images in [0, 1] (KITTI-like intrinsics with jitter, small random motions, depth 1-80 m):

- the pose matrices: ``transformation_from_parameters`` vs ``depthlab.geometry.pose_from_parameters``,
  both directions (Monodepth2 divides the axis by angle + 1e-7, depthlab does not);
- the warp: Monodepth2's layers + ``grid_sample(padding_mode="border", align_corners=True)`` (the
  PyTorch 0.4 behaviour it was written for) vs ``warp_with_pose`` on the same pose matrix;
- both against ``warp_with_pose`` in float64: how much of that difference is float32 rounding
  (with motions of up to ~1 m over depths from 1 m, a pixel's projection is rounded to ~1e-4 px);
- for orientation, the published call as today's PyTorch runs it (``align_corners`` unset, i.e.
  False): half a pixel off, so a large difference is expected there.

The test suite restates these layers (tests/test_geometry_pose.py); this script checks the
restatement against the real code once, outside the suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from depthlab.geometry import pose_from_parameters, warp_with_pose  # noqa: E402

DEFAULT_MIRROR = "/work/.mirror/nianticlabs+monodepth2/repo"


def load_layers(mirror: str, folder: Path):
    """Monodepth2's layers.py from the git directory ``mirror``, imported from ``folder``."""
    text = subprocess.run(["git", "-C", mirror, "show", "HEAD:layers.py"], check=True,
                          capture_output=True, text=True).stdout
    path = folder / "monodepth2_layers.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("monodepth2_layers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", default=DEFAULT_MIRROR, help="git directory of nianticlabs/monodepth2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=640)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    batch, height, width = args.batch, args.height, args.width

    with tempfile.TemporaryDirectory() as tmp:
        layers = load_layers(args.mirror, Path(tmp))

        source = torch.rand(batch, 3, height, width)
        depth = 1 + 79 * torch.rand(batch, 1, height, width)
        jitter = 1 + 0.1 * (2 * torch.rand(batch, 4) - 1)
        intrinsics = torch.tensor([0.58 * width, 1.92 * height, 0.5 * width, 0.5 * height]) * jitter
        axis_angle = 0.05 * torch.randn(batch, 1, 3)
        translation = 0.5 * torch.randn(batch, 1, 3)

        pose_diff = 0.0
        for invert in (False, True):
            theirs = layers.transformation_from_parameters(axis_angle, translation, invert=invert)
            ours = pose_from_parameters(axis_angle, translation, invert=invert)
            pose_diff = max(pose_diff, (theirs - ours).abs().max().item())
        pose = layers.transformation_from_parameters(axis_angle, translation, invert=True)

        k = torch.zeros(batch, 4, 4)
        k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2] = intrinsics.unbind(-1)
        k[:, 2, 2] = k[:, 3, 3] = 1
        backproject = layers.BackprojectDepth(batch, height, width)
        project = layers.Project3D(batch, height, width)
        grid = project(backproject(depth, torch.linalg.inv(k)), k, pose)
        theirs = F.grid_sample(source, grid, padding_mode="border", align_corners=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            published_today = F.grid_sample(source, grid, padding_mode="border")
        ours, inside = warp_with_pose(source, depth, intrinsics, pose)
        exact, _ = warp_with_pose(*(t.double() for t in (source, depth, intrinsics, pose)))

    print(f"monodepth2 layers.py from {args.mirror} (HEAD), torch {torch.__version__}, "
          f"{batch}x3x{height}x{width}, seed {args.seed}, {inside.float().mean().item():.1%} of pixels inside")
    print(f"pose matrices (transformation_from_parameters vs pose_from_parameters), max abs diff: {pose_diff:.3g}")
    print(f"warp (layers + grid_sample align_corners=True vs warp_with_pose), max abs diff: "
          f"{(theirs - ours).abs().max().item():.3g}")
    print(f"  each against the same formulas in float64 (rounding of the float32 geometry): Monodepth2 "
          f"{(theirs - exact).abs().max().item():.3g}, warp_with_pose {(ours - exact).abs().max().item():.3g}")
    print(f"for orientation, the published call under today's default (align_corners=False) vs warp_with_pose: "
          f"max abs diff {(published_today - ours).abs().max().item():.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
