"""depthlab's odometry score (``depthlab.pose.odometry``, used by ``depthlab odometry``) beside
Monodepth2's own ``evaluate_pose.py`` arithmetic, run on the same poses.

    python benchmarks/peer_monodepth2_pose.py [--mirror /path/to/monodepth2/git/dir] [--trials 20]

``dump_xyz`` and ``compute_ate`` are taken out of Monodepth2's ``evaluate_pose.py`` with ``ast`` and
executed as they are, with its loop over snippets (local ground-truth poses
``inv(inv(G[i-1]) G[i])``, slices of 4 motions, mean and ``np.std``); the motions are made by its
``layers.transformation_from_parameters`` from random axis-angles and translations (a wandering
camera, then per-step noise and a wrong scale for the prediction). Printed: the largest difference
of any snippet's ATE and of the mean and std, and the largest difference of the 4x4 motions made by
Monodepth2's and depthlab's pose parameterisations from the same numbers.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from depthlab.geometry import pose_from_parameters  # noqa: E402
from depthlab.pose.odometry import snippet_ates, steps_from_global  # noqa: E402
from peer_monodepth2_loss import DEFAULT_MIRROR, _git_show  # noqa: E402


def monodepth2(mirror: str) -> dict:
    """Monodepth2's layers.py and evaluate_pose.py's dump_xyz and compute_ate, as plain functions."""
    namespace: dict = {"__name__": "monodepth2_layers", "np": np}
    exec(compile(_git_show(mirror, "layers.py"), "monodepth2/layers.py", "exec"), namespace)
    tree = ast.parse(_git_show(mirror, "evaluate_pose.py"))
    wanted = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in ("dump_xyz", "compute_ate")]
    exec(compile(ast.Module(wanted, []), "monodepth2/evaluate_pose.py", "exec"), namespace)
    return namespace


def evaluate_pose_loop(md2: dict, gt_global: np.ndarray, pred_poses: np.ndarray) -> list[float]:
    """evaluate_pose.py's loop after its predictions: the ATE of every snippet."""
    gt_local = [np.linalg.inv(np.dot(np.linalg.inv(gt_global[i - 1]), gt_global[i])) for i in range(1, len(gt_global))]
    track_length = 5
    return [md2["compute_ate"](np.array(md2["dump_xyz"](gt_local[i:i + track_length - 1])),
                               np.array(md2["dump_xyz"](pred_poses[i:i + track_length - 1])))
            for i in range(0, len(gt_global) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", default=DEFAULT_MIRROR, help="a git copy of nianticlabs/monodepth2")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    md2 = monodepth2(args.mirror)
    rng = np.random.default_rng(args.seed)

    def motions(n, rot, trans):  # both parameterisations from the same float32 numbers
        aa = torch.tensor(rng.normal(0, rot, (n, 1, 3)), dtype=torch.float32)
        tr = torch.tensor(rng.normal(0, trans, (n, 1, 3)), dtype=torch.float32)
        theirs = md2["transformation_from_parameters"](aa, tr).double().numpy()
        ours = pose_from_parameters(aa[:, 0], tr[:, 0]).double().numpy()
        return theirs, float(np.abs(theirs - ours).max())

    worst_snippet = worst_mean = worst_std = worst_param = 0.0
    frames = []
    for _ in range(args.trials):
        n = int(rng.integers(3, 60))
        frames.append(n)
        steps, d1 = motions(n - 1, 0.05, 1.0)
        gt_global = np.zeros((n, 4, 4))
        gt_global[0] = np.eye(4)
        for i in range(1, n):  # camera-to-world of a camera moving by the inverse steps
            gt_global[i] = gt_global[i - 1] @ np.linalg.inv(steps[i - 1])
        noise, d2 = motions(n - 1, 0.01, 0.2)
        pred = np.array([g @ e for g, e in zip(steps, noise)])
        pred[:, :3, 3] *= 0.37  # a network that has the scale wrong
        theirs = np.array(evaluate_pose_loop(md2, gt_global, pred))
        ours = snippet_ates(pred, steps_from_global(gt_global))
        worst_snippet = max(worst_snippet, float(np.abs(theirs - ours).max()))
        worst_mean = max(worst_mean, abs(float(theirs.mean() - ours.mean())))
        worst_std = max(worst_std, abs(float(theirs.std() - ours.std())))
        worst_param = max(worst_param, d1, d2)
    print(f"| check ({args.trials} random sequences of {min(frames)}-{max(frames)} frames) | max abs difference |")
    print("|---|---|")
    print(f"| snippet ATE, depthlab vs evaluate_pose.py | {worst_snippet:.1e} |")
    print(f"| mean ATE | {worst_mean:.1e} |")
    print(f"| std ATE | {worst_std:.1e} |")
    print(f"| 4x4 motion, pose_from_parameters vs transformation_from_parameters (float32) | {worst_param:.1e} |")


if __name__ == "__main__":
    main()
