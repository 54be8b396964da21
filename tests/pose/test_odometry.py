"""Monodepth2's odometry evaluation (evaluate_pose.py): its arithmetic by hand, the script's loop
restated, and ``depthlab odometry`` on a KITTI odometry tree written here in the benchmark's layout."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch

from depthlab.cli import main
from depthlab.data.base import resolve_path
from depthlab.geometry import pose_from_parameters
from depthlab.pose import build as build_pose
from depthlab.pose.odometry import (
    chain_positions, check_consecutive, read_odometry_list, snippet_ate, snippet_ates, steps_from_global,
)

POSE_NET = {"name": "monodepth2", "encoder": "test_resnet", "pretrained": False}


# ---- the arithmetic, by hand ------------------------------------------------------------------------


def test_snippet_ate_is_the_root_of_the_summed_squares_over_n_after_scale_alignment():
    gt = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=float)
    assert snippet_ate(gt, 2 * gt) == 0.0  # scale is free
    assert snippet_ate(gt, 2 * gt + 5) == 0.0  # so is the start
    # pred (0, 1, 1) along x: scale (1 + 2) / (1 + 1) = 1.5, errors 0, 0.5, -0.5 -> sqrt(0.5) / 3
    pred = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 0]], dtype=float)
    assert snippet_ate(gt, pred) == pytest.approx(math.sqrt(0.5) / 3, abs=1e-15)
    # not the root-mean-square error: that is sqrt(N) times larger
    assert snippet_ate(gt, pred) * math.sqrt(3) == pytest.approx(math.sqrt(np.mean(np.sum((1.5 * pred - gt) ** 2, 1))))
    # a camera standing still: scale 0, the error is the true path's
    assert snippet_ate(gt, np.zeros_like(gt)) == pytest.approx(math.sqrt(5) / 3)


def test_chained_points_are_the_translations_of_the_running_products():
    quarter_turn = np.eye(4)
    quarter_turn[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # 90 degrees about z
    step = np.eye(4)
    step[:3, 3] = [1, 0, 0]
    turn_then_step = quarter_turn.copy()
    turn_then_step[:3, 3] = [1, 0, 0]
    points = chain_positions([turn_then_step, step, step])
    # products: T1 -> (1, 0, 0); T1 S -> (1, 0, 0) + R (1, 0, 0) = (1, 1, 0); T1 S S -> (1, 2, 0)
    np.testing.assert_allclose(points, [[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 2, 0]], atol=1e-15)


def test_true_steps_map_each_frames_points_into_the_next_frame():
    # a camera driving 1 m a frame along its z axis: a point 5 m ahead in frame i is 4 m ahead in frame i + 1
    poses = np.stack([np.eye(4)] * 3)
    poses[:, 2, 3] = [0, 1, 2]
    steps = steps_from_global(poses)
    point = np.array([0, 0, 5, 1.0])
    np.testing.assert_allclose(steps[0] @ point, [0, 0, 4, 1])
    np.testing.assert_allclose(steps[1] @ (steps[0] @ point), [0, 0, 3, 1])


def _evaluate_pose_restated(gt_global: np.ndarray, pred_poses: np.ndarray) -> tuple[float, float]:
    """Monodepth2 evaluate_pose.py's loop, written from its formulas: local poses inv(inv(G[i-1]) G[i]),
    dump_xyz of pred_poses[i:i + 4] and of the local poses, compute_ate, mean and np.std."""
    local = [np.linalg.inv(np.linalg.inv(gt_global[i - 1]) @ gt_global[i]) for i in range(1, len(gt_global))]

    def dump(transforms):
        world, xyz = np.eye(4), [np.zeros(3)]
        for t in transforms:
            world = world @ t
            xyz.append(world[:3, 3])
        return np.array(xyz)

    def ate(g, p):
        p = p + (g[0] - p[0])[None]
        s = np.sum(g * p) / np.sum(p**2)
        return np.sqrt(np.sum((p * s - g) ** 2)) / g.shape[0]

    values = [ate(dump(local[i:i + 4]), dump(pred_poses[i:i + 4])) for i in range(len(gt_global) - 1)]
    return float(np.mean(values)), float(np.std(values))


def test_snippet_ates_equal_evaluate_pose_on_random_trajectories():
    rng = np.random.default_rng(0)
    for n in (2, 5, 23):
        steps = pose_from_parameters(torch.tensor(rng.normal(0, 0.05, (n - 1, 3))),
                                     torch.tensor(rng.normal(0, 1, (n - 1, 3)))).numpy()
        gt_global = np.zeros((n, 4, 4))
        gt_global[0] = np.eye(4)
        for i in range(1, n):
            gt_global[i] = gt_global[i - 1] @ steps[i - 1]
        noise = pose_from_parameters(torch.tensor(rng.normal(0, 0.01, (n - 1, 3))),
                                     torch.tensor(rng.normal(0, 0.2, (n - 1, 3)))).numpy()
        pred = steps_from_global(gt_global) @ noise
        ates = snippet_ates(pred, steps_from_global(gt_global))
        assert len(ates) == n - 1
        mean, std = _evaluate_pose_restated(gt_global, pred)
        assert float(np.mean(ates)) == pytest.approx(mean, rel=1e-12)
        assert float(np.std(ates)) == pytest.approx(std, rel=1e-12, abs=1e-15)


def test_shipped_odometry_test_lists_are_consecutive_frames_of_one_sequence():
    for sequence, count in ((9, 1590), (10, 1200)):
        frames = read_odometry_list(resolve_path(f"data/splits/monodepth2/odom/test_files_{sequence:02d}.txt"))
        check_consecutive(frames)
        assert (len(frames), frames[0].sequence, frames[0].frame, frames[0].side) == (count, sequence, 0, "l")


# ---- depthlab odometry on a written KITTI odometry tree ----------------------------------------------


def _odometry_tree(root, frames: int = 7, size=(24, 40)):
    rng = np.random.default_rng(1)
    images = root / "sequences" / "09" / "image_2"
    images.mkdir(parents=True)
    for i in range(frames):
        cv2.imwrite(str(images / f"{i:06d}.png"), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    poses = np.zeros((frames, 3, 4))
    poses[:, :3, :3] = np.eye(3)
    poses[:, 2, 3] = np.arange(frames) * 0.8 + rng.normal(0, 0.05, frames)  # forward, unevenly
    poses[:, 0, 3] = rng.normal(0, 0.1, frames)
    (root / "poses").mkdir()
    np.savetxt(root / "poses" / "09.txt", poses.reshape(frames, 12))
    split = root / "test_files_09.txt"
    split.write_text("".join(f"9 {i} l\n" for i in range(frames - 1)))
    return split


def _pose_checkpoint(path, **settings):
    torch.manual_seed(3)
    net = build_pose(POSE_NET)
    torch.save({"state_dict": {f"pose_net.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"pose_net": POSE_NET, **settings}}, path)
    return net.eval()


def test_odometry_command_scores_the_checkpoints_pose_network_as_evaluate_pose(tmp_path, capsys):
    split = _odometry_tree(tmp_path / "kitti_odom")
    net = _pose_checkpoint(tmp_path / "last.ckpt")
    code = main(["odometry", "--ckpt_path", str(tmp_path / "last.ckpt"), "--data_path", str(tmp_path / "kitti_odom"),
                 "--split_file", str(split), "--size", "32", "64", "--batch_size", "4", "--device", "cpu"])
    assert code == 0
    # the same network, by hand: each image read with OpenCV, area-resized, the pair in temporal order
    files = sorted((tmp_path / "kitti_odom" / "sequences" / "09" / "image_2").glob("*.png"))
    images = torch.stack([torch.from_numpy(cv2.resize(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB), (64, 32),
                                                      interpolation=cv2.INTER_LINEAR)).permute(2, 0, 1).float() / 255
                          for f in files])
    with torch.no_grad():
        pred = net.pose(images[:-1], images[1:]).double().numpy()
    gt = np.loadtxt(tmp_path / "kitti_odom" / "poses" / "09.txt").reshape(-1, 3, 4)
    gt = np.concatenate([gt, np.tile([[[0, 0, 0, 1.0]]], (len(gt), 1, 1))], 1)
    mean, std = _evaluate_pose_restated(gt, pred)
    result = json.loads((tmp_path / "odometry_09.json").read_text())
    assert (result["snippets"], result["sequence"]) == (6, 9)
    assert result["ate_mean"] == pytest.approx(mean, rel=1e-6) and result["ate_std"] == pytest.approx(std, rel=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "odometry_09_poses.npy"), pred, rtol=1e-5, atol=1e-7)
    assert f"{mean:.4f} +- {std:.4f} m" in capsys.readouterr().out


@pytest.mark.parametrize("defect, expected", [
    ("missing_image", "000004.png: missing file"),
    ("short_pose_row", "09.txt:3: expected 12 finite numbers"),
    ("gap_in_list", "test_files_09.txt:3: odometry evaluation needs consecutive frames"),
    ("list_beyond_poses", "needs poses of frames 6 and 7, but"),
    ("bad_line", "test_files_09.txt:2: expected '<sequence> <frame> <l|r>'"),
])
def test_bad_odometry_input_is_one_line_naming_the_file_and_line(tmp_path, capsys, defect, expected):
    root = tmp_path / "kitti_odom"
    split = _odometry_tree(root)
    _pose_checkpoint(tmp_path / "last.ckpt")
    lines = split.read_text().splitlines()
    if defect == "missing_image":
        (root / "sequences" / "09" / "image_2" / "000004.png").unlink()
    elif defect == "short_pose_row":
        rows = (root / "poses" / "09.txt").read_text().splitlines()
        rows[2] = " ".join(rows[2].split()[:11])
        (root / "poses" / "09.txt").write_text("\n".join(rows) + "\n")
    elif defect == "gap_in_list":
        split.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    elif defect == "list_beyond_poses":
        split.write_text("\n".join(lines + ["9 6 l"]) + "\n")
    elif defect == "bad_line":
        split.write_text("\n".join([lines[0], "2011_09_26/2011_09_26_drive_0001_sync 1 l"] + lines[2:]) + "\n")
    code = main(["odometry", "--ckpt_path", str(tmp_path / "last.ckpt"), "--data_path", str(root),
                 "--split_file", str(split), "--size", "32", "64", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "odometry_09.json").exists()


def test_a_checkpoint_without_a_pose_network_is_one_line_saying_so(tmp_path, capsys):
    split = _odometry_tree(tmp_path / "kitti_odom")
    torch.save({"state_dict": {}, "hyper_parameters": {"net": {"name": "unet"}}}, tmp_path / "depth.ckpt")
    code = main(["odometry", "--ckpt_path", str(tmp_path / "depth.ckpt"), "--data_path", str(tmp_path / "kitti_odom"),
                 "--split_file", str(split)])
    err = capsys.readouterr().err
    assert code == 2 and "has no pose network" in err and "depth.ckpt" in err


def test_a_pose_network_of_more_than_two_frames_is_refused_by_name(tmp_path):
    from depthlab.errors import ConfigError
    from depthlab.pose.odometry import load_pose_net

    spec = {**POSE_NET, "num_frames": 3}
    net = build_pose(spec)
    torch.save({"state_dict": {f"pose_net.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"pose_net": spec}}, tmp_path / "three.ckpt")
    with pytest.raises(ConfigError, match=r"three\.ckpt: its pose network stacks 3 frames"):
        load_pose_net(tmp_path / "three.ckpt")


def test_eigen_zhou_training_holds_the_raw_drives_of_sequences_09_and_10_as_the_docs_say():
    lines = resolve_path("data/splits/monodepth2/eigen_zhou/train_files.txt").read_text().splitlines()
    drives = [line.split()[0] for line in lines]
    assert drives.count("2011_09_30/2011_09_30_drive_0033_sync") == 2873  # sequence 09
    assert drives.count("2011_09_30/2011_09_30_drive_0034_sync") == 2009  # sequence 10


def test_the_input_size_defaults_to_the_checkpoints_eval_size_then_monodepth2s(tmp_path, capsys):
    split = _odometry_tree(tmp_path / "kitti_odom")
    _pose_checkpoint(tmp_path / "sized.ckpt", eval_protocol={"name": "kitti", "input_size": [32, 64]})
    _pose_checkpoint(tmp_path / "plain.ckpt", eval_protocol={"name": "none"})
    for name, expected in (("sized", "at 32x64 (the checkpoint's model.eval_protocol.input_size)"),
                           ("plain", "at 192x640 (Monodepth2's default; the checkpoint names none)")):
        assert main(["odometry", "--ckpt_path", str(tmp_path / f"{name}.ckpt"), "--data_path", str(tmp_path / "kitti_odom"),
                     "--split_file", str(split), "--device", "cpu"]) == 0
        assert expected in capsys.readouterr().out
        assert json.loads((tmp_path / "odometry_09.json").read_text())["size"] == [int(v) for v in expected.split("at ")[1].split(" ")[0].split("x")]


def test_a_sequence_contradicting_the_list_is_one_line_naming_both(tmp_path, capsys):
    split = _odometry_tree(tmp_path / "kitti_odom")
    _pose_checkpoint(tmp_path / "last.ckpt")
    code = main(["odometry", "--ckpt_path", str(tmp_path / "last.ckpt"), "--data_path", str(tmp_path / "kitti_odom"),
                 "--split_file", str(split), "--sequence", "10"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--sequence 10 contradicts --split_file" in err[0]
    assert f"{split}:1 is sequence 9" in err[0]


def test_each_image_is_read_once_across_batches(tmp_path, monkeypatch):
    from depthlab.data import readers
    from depthlab.pose.odometry import predict_steps

    split = _odometry_tree(tmp_path / "kitti_odom")
    net = _pose_checkpoint(tmp_path / "last.ckpt")
    frames = read_odometry_list(split)
    reads = []
    real = readers.read_rgb
    monkeypatch.setattr(readers, "read_rgb", lambda path, source: reads.append(path.name) or real(path, source))
    one_batch = predict_steps(net, tmp_path / "kitti_odom", frames, (32, 64), batch_size=len(frames))
    reads_one = list(reads)
    reads.clear()
    steps = predict_steps(net, tmp_path / "kitti_odom", frames, (32, 64), batch_size=4)  # 6 pairs: batches of 4 and 2
    assert reads == reads_one == [f"{i:06d}.png" for i in range(7)]
    np.testing.assert_allclose(steps, one_batch, rtol=1e-5, atol=1e-7)
