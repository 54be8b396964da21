"""Monodepth2's odometry evaluation of a pose network: absolute trajectory error on 5-frame snippets.

What Monodepth2's ``evaluate_pose.py`` does (it takes ``dump_xyz`` and ``compute_ate`` from
SfMLearner), restated here in float64 NumPy and shared by ``depthlab odometry`` (KITTI odometry
sequences 09 and 10) and the procedural-video experiments (:mod:`depthlab.experiments.extras`):

- **Steps.** The pose network sees each pair (frame i, frame i + 1) in temporal order; its motion
  (Monodepth2's parameterisation, not inverted) maps frame-i camera points to frame-(i + 1) camera
  points. The true step from KITTI's camera-to-world poses ``G`` is ``inv(inv(G_i) G_{i+1})``,
  the same direction.
- **Snippets.** Snippet i chains steps i .. i + 3 (fewer at the end of the list, as the script's
  slice gives) from the identity: its points are the translations of the running products
  ``T_i``, ``T_i T_{i+1}``, ... (:func:`chain_positions`, ``dump_xyz``). These are not the camera
  centres (those would come from the inverses); the published numbers are of these points, so are
  depthlab's.
- **Error.** :func:`snippet_ate` (``compute_ate``): the predicted points shifted to start at the
  true first point, scaled by ``sum(g . p) / sum(p . p)``, and
  ``sqrt(sum |scale p - g|^2) / N`` over the snippet's N points. Note the division by N *outside*
  the root: it is the root-mean-square error divided by sqrt(N) (by sqrt(5) for full snippets), the
  quantity Monodepth2's table reports (0.017 / 0.015 m on sequences 09 / 10 for M).
- The score is the mean and the population standard deviation (``np.std``) over snippets.

KITTI odometry on disk (the benchmark's colour download and its ground-truth poses): images
``<root>/sequences/<SS>/image_2/<FFFFFF>.png`` (left; ``image_3`` right, Monodepth2's side map),
poses ``<root>/poses/<SS>.txt`` (one row of 12 numbers per frame: the 3x4 camera-to-world matrix,
row-major). The poses are the left grey camera's (cam0, 6 cm left of image_2's colour camera);
Monodepth2 scores the colour frames' motions against them as they are, and so does depthlab. Split lists are Monodepth2's (``<sequence> <frame> <l|r>``, shipped in
``data/splits/monodepth2/odom/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depthlab.data.readers import MISSING
from depthlab.errors import ConfigError, DataError, Problem

TRACK_LENGTH = 5  # frames per snippet (evaluate_pose.py's track_length)
SIDES = {"l": 2, "r": 3}  # Monodepth2's KITTIOdomDataset side map: image_2 is the left colour camera


# ---- the arithmetic ---------------------------------------------------------------------------------


def chain_positions(steps: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """(len(steps) + 1, 3): the origin, then the translation of each running product of the 4x4
    ``steps`` from the identity (SfMLearner's ``dump_xyz``)."""
    product = np.eye(4)
    points = [product[:3, 3].copy()]
    for step in steps:
        product = product @ np.asarray(step, dtype=np.float64)
        points.append(product[:3, 3].copy())
    return np.stack(points)


def snippet_ate(gt_xyz: np.ndarray, pred_xyz: np.ndarray) -> float:
    """SfMLearner's / Monodepth2's ``compute_ate`` of one snippet's (N, 3) points: the prediction moved
    to start at the true first point and scaled by least squares, then sqrt(sum of squared errors) / N.
    A prediction with every point at its start (a camera standing still) gets scale 0 (the script
    divides by zero there)."""
    gt = np.asarray(gt_xyz, dtype=np.float64)
    pred = np.asarray(pred_xyz, dtype=np.float64)
    if gt.shape != pred.shape or gt.ndim != 2 or gt.shape[1] != 3:
        raise ValueError(f"snippet_ate: expected two (N, 3) arrays of one shape, got {gt.shape} and {pred.shape}")
    pred = pred + (gt[0] - pred[0])[None]
    norm = float(np.sum(pred**2))
    scale = float(np.sum(gt * pred)) / norm if norm > 0 else 0.0
    return float(np.sqrt(np.sum((pred * scale - gt) ** 2)) / gt.shape[0])


def snippet_ates(pred_steps: Sequence[np.ndarray], gt_steps: Sequence[np.ndarray],
                 track_length: int = TRACK_LENGTH) -> np.ndarray:
    """The ATE of every snippet: snippet i chains steps i .. i + track_length - 2 of both (fewer at
    the end), as evaluate_pose.py loops over its frames."""
    if len(pred_steps) != len(gt_steps):
        raise ValueError(f"snippet_ates: {len(pred_steps)} predicted steps against {len(gt_steps)} true ones")
    span = track_length - 1
    return np.array([snippet_ate(chain_positions(gt_steps[i:i + span]), chain_positions(pred_steps[i:i + span]))
                     for i in range(len(pred_steps))])


def steps_from_global(poses: np.ndarray) -> np.ndarray:
    """(N - 1, 4, 4) true steps from (N, 4, 4) camera-to-world poses: step i maps frame-i camera
    points to frame-(i + 1) camera points, ``inv(inv(G_i) G_{i+1})``."""
    return np.stack([np.linalg.inv(np.linalg.inv(poses[i]) @ poses[i + 1]) for i in range(len(poses) - 1)])


# ---- KITTI odometry on disk ---------------------------------------------------------------------------


def read_poses(path: Path) -> np.ndarray:
    """KITTI's ``poses/<SS>.txt`` as (N, 4, 4) float64 camera-to-world matrices; a line that is not
    12 numbers is one error naming the file and the line."""
    if not path.is_file():
        raise DataError(Problem(MISSING, str(path), "no ground-truth poses (the odometry benchmark's "
                                "data_odometry_poses download, poses/<SS>.txt)", "--data_path"))
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            values = []
        if len(values) != 12 or not np.isfinite(values).all():
            raise ConfigError(f"{path}:{lineno}: expected 12 finite numbers (a 3x4 camera-to-world matrix, row-major), "
                              f"got {line.strip()[:80]!r}")
        rows.append(values)
    poses = np.zeros((len(rows), 4, 4))
    poses[:, :3, :] = np.asarray(rows).reshape(-1, 3, 4)
    poses[:, 3, 3] = 1.0
    return poses


@dataclass(frozen=True)
class OdometryFrame:
    sequence: int
    frame: int
    side: str
    source: str  # list:lineno


def read_odometry_list(path: Path) -> list[OdometryFrame]:
    """Monodepth2's odometry split lines ``<sequence> <frame> <l|r>``; a malformed line is one error
    naming the list and the line."""
    frames = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        source = f"{path}:{lineno}"
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or parts[2] not in SIDES:
            raise ConfigError(f"{source}: expected '<sequence> <frame> <l|r>' (Monodepth2's odometry lists), "
                              f"got {line.strip()!r}")
        frames.append(OdometryFrame(int(parts[0]), int(parts[1]), parts[2], source))
    if not frames:
        raise ConfigError(f"{path}: no frames listed")
    return frames


def check_consecutive(frames: Sequence[OdometryFrame]) -> None:
    """Each line the frame after the previous line's, of one sequence and one camera: the snippets
    chain neighbouring steps, so a gap would join motions that do not follow each other."""
    first = frames[0]
    for before, line in zip(frames, frames[1:]):
        if (line.sequence, line.side) != (first.sequence, first.side) or line.frame != before.frame + 1:
            raise ConfigError(f"{line.source}: odometry evaluation needs consecutive frames of one sequence and "
                              f"camera (expected sequence {first.sequence} frame {before.frame + 1} {first.side}, "
                              f"got sequence {line.sequence} frame {line.frame} {line.side})")


def image_path(root: Path, frame: OdometryFrame, offset: int = 0, image_ext: str = ".png") -> Path:
    return (root / "sequences" / f"{frame.sequence:02d}" / f"image_{SIDES[frame.side]}"
            / f"{frame.frame + offset:06d}{image_ext}")


def load_pose_net(checkpoint_path: str | Path) -> tuple[Any, dict[str, Any]]:
    """The pose network of a depthlab checkpoint file with the checkpoint's model settings
    (``hyper_parameters``): :func:`pose_net_from_checkpoint` of the file read."""
    from depthlab.checkpointing.io import read_checkpoint

    checkpoint = read_checkpoint(checkpoint_path)
    return pose_net_from_checkpoint(checkpoint, checkpoint_path), checkpoint.get("hyper_parameters", {})


def pose_net_from_checkpoint(checkpoint: dict[str, Any], name: str | Path) -> Any:
    """The pose network of a read checkpoint (``model.pose_net``, weights from its state dict), in
    eval mode; a checkpoint trained without one, or one that stacks more than two frames, is one
    error naming the checkpoint (``name``)."""
    from depthlab.pose import build

    spec = checkpoint.get("hyper_parameters", {}).get("pose_net")
    if not spec:
        raise ConfigError(f"{name}: this checkpoint has no pose network (trained without model.pose_net: "
                          "only monocular-video runs, frame_ids such as [0, -1, 1], train one)")
    net = build(spec)
    if getattr(net, "num_frames", 2) != 2:
        raise ConfigError(f"{name}: its pose network stacks {net.num_frames} frames; Monodepth2's odometry "
                          "evaluation takes the motion of each pair of consecutive frames (num_frames: 2)")
    prefix = "pose_net."
    net.load_state_dict({k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)})
    return net.eval()


def trained_size(settings: dict[str, Any]) -> tuple[int, int] | None:
    """The (H, W) a checkpoint's evaluation protocol resizes to (``model.eval_protocol.input_size``,
    e.g. 192 640 in configs/kitti_mono.yaml), or None where it names none."""
    protocol = settings.get("eval_protocol")
    size = protocol.get("input_size") if isinstance(protocol, dict) else None
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
        return int(size[0]), int(size[1])
    return None


def predict_steps(net: Any, root: Path, frames: Sequence[OdometryFrame], size: tuple[int, int],
                  image_ext: str = ".png", batch_size: int = 16, device: str = "cpu") -> np.ndarray:
    """(len(frames), 4, 4) float64: the network's motion from each listed frame to the next
    (:meth:`depthlab.pose.monodepth2.PoseNet.pose` on the pair in temporal order), each image read
    once and brought to ``size`` (H, W) by :func:`depthlab.data.images.to_input_size` (area
    averaging; Monodepth2 resizes with Pillow's Lanczos filter). ``frames`` must be consecutive
    (:func:`check_consecutive`)."""
    import torch

    from depthlab.data.images import to_input_size
    from depthlab.data.readers import read_rgb

    def load(frame: OdometryFrame, offset: int) -> torch.Tensor:
        rgb = read_rgb(image_path(root, frame, offset, image_ext), frame.source)
        return torch.from_numpy(np.ascontiguousarray(to_input_size(rgb, *size))).permute(2, 0, 1).float() / 255

    steps, carried = [], None  # carried: the last image of the previous batch, the first of this one
    with torch.no_grad():
        for start in range(0, len(frames), batch_size):
            chunk = frames[start:start + batch_size]
            first = load(chunk[0], 0) if carried is None else carried
            images = torch.stack([first] + [load(f, 1) for f in chunk])
            carried = images[-1]
            images = images.to(device)
            steps.append(net.pose(images[:-1], images[1:]).double().cpu().numpy())
    return np.concatenate(steps)


def true_steps(poses: np.ndarray, frames: Sequence[OdometryFrame], poses_path: Path) -> np.ndarray:
    """(len(frames), 4, 4): the true motion from each listed frame to the next."""
    last = frames[-1]
    if last.frame + 1 >= len(poses):
        raise ConfigError(f"{last.source}: frame {last.frame} needs poses of frames {last.frame} and {last.frame + 1}, "
                          f"but {poses_path} has {len(poses)} rows (frames 0..{len(poses) - 1})")
    first = frames[0].frame
    return steps_from_global(poses[first:last.frame + 2])


@dataclass(frozen=True)
class OdometryResult:
    sequence: int
    ate: np.ndarray  # one per snippet
    pred_steps: np.ndarray
    gt_steps: np.ndarray

    @property
    def mean(self) -> float:
        return float(np.mean(self.ate))

    @property
    def std(self) -> float:
        return float(np.std(self.ate))  # population std, as the script's np.std


def evaluate_odometry(net: Any, root: Path, frames: Sequence[OdometryFrame], size: tuple[int, int],
                      image_ext: str = ".png", batch_size: int = 16, device: str = "cpu") -> OdometryResult:
    """Monodepth2's evaluate_pose on ``frames`` (:func:`read_odometry_list`; consecutive, one sequence)
    under ``root``."""
    check_consecutive(frames)
    poses_path = root / "poses" / f"{frames[0].sequence:02d}.txt"
    gt = true_steps(read_poses(poses_path), frames, poses_path)  # before the images: a poses problem costs no inference
    pred = predict_steps(net, root, frames, size, image_ext, batch_size, device)
    return OdometryResult(frames[0].sequence, snippet_ates(pred, gt), pred, gt)
