"""``depthlab odometry``: a checkpoint's pose network on a KITTI odometry sequence, scored as
Monodepth2's ``evaluate_pose.py`` scores it (:mod:`depthlab.pose.odometry`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_LIST = "data/splits/monodepth2/odom/test_files_{sequence:02d}.txt"


def _parser() -> argparse.ArgumentParser:
    from depthlab.data.kitti import IMAGE_EXTS
    from depthlab.pose.odometry import TRACK_LENGTH

    parser = argparse.ArgumentParser(
        prog="depthlab odometry", allow_abbrev=False,
        description="Absolute trajectory error of a checkpoint's pose network on a KITTI odometry sequence, as "
                    f"Monodepth2 reports it: motions of consecutive frame pairs chained over {TRACK_LENGTH}-frame "
                    "snippets, scale-aligned to the ground-truth poses (docs/evaluation.md, 'Pose networks'). Needs the odometry "
                    "benchmark's colour images (sequences/SS/image_2/) and its poses (poses/SS.txt) under "
                    "--data_path. Writes odometry_SS.json and the predicted motions (odometry_SS_poses.npy). "
                    "Sequences 09 and 10 are raw drives that Monodepth2's eigen_zhou training list contains: "
                    "score a network trained on other drives (Monodepth2's odom split, sequences 00-08).")
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint trained with model.pose_net")
    parser.add_argument("--data_path", required=True, help="the KITTI odometry root (holds sequences/ and poses/)")
    parser.add_argument("--sequence", type=int, default=None,
                        help="sequence number (default 9; Monodepth2 reports 9 and 10); with --split_file, the list's")
    parser.add_argument("--split_file", default=None,
                        help="list of '<sequence> <frame> <l|r>' lines, consecutive frames (default: Monodepth2's "
                             "data/splits/monodepth2/odom/test_files_SS.txt)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=None,
                        help="the pose network's input size (default: the checkpoint's model.eval_protocol.input_size, "
                             "else 192 640, Monodepth2's)")
    parser.add_argument("--image_ext", choices=IMAGE_EXTS, default=".png",
                        help="image file extension (.png as KITTI ships them; .jpg for Monodepth2's JPEG copies)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--output_dir", default=None, help="where the results go (default: the checkpoint's folder)")
    return parser


def main(argv: list[str]) -> int:
    """evaluation: 'depthlab odometry --ckpt_path Y.ckpt --data_path KITTI_ODOMETRY [--sequence 9]'"""
    import numpy as np
    import torch

    from depthlab.data.base import require_dir, resolve_path
    from depthlab.errors import ConfigError
    from depthlab.pose.odometry import TRACK_LENGTH, evaluate_odometry, load_pose_net, read_odometry_list, trained_size

    args = _parser().parse_args(argv)
    if (args.size is not None and min(args.size) < 1) or args.batch_size < 1:
        raise ConfigError(f"--size and --batch_size: expected positive numbers, got {args.size} and {args.batch_size}")
    root = require_dir(args.data_path, "--data_path")
    split_file = resolve_path(args.split_file or DEFAULT_LIST.format(sequence=9 if args.sequence is None else args.sequence))
    if not split_file.is_file():
        raise ConfigError(f"--split_file: {split_file} does not exist")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    frames = read_odometry_list(split_file)
    if args.split_file and args.sequence is not None and frames[0].sequence != args.sequence:
        raise ConfigError(f"--sequence {args.sequence} contradicts --split_file: {frames[0].source} is sequence "
                          f"{frames[0].sequence} (leave --sequence out with a list of your own)")
    net, settings = load_pose_net(args.ckpt_path)
    if args.size is not None:
        size, where = tuple(args.size), "--size"
    elif (saved := trained_size(settings)) is not None:
        size, where = saved, "the checkpoint's model.eval_protocol.input_size"
    else:
        size, where = (192, 640), "Monodepth2's default; the checkpoint names none"
    result = evaluate_odometry(net.to(device), root, frames, size, args.image_ext, args.batch_size, device)
    sequence = result.sequence
    out_dir = Path(args.output_dir) if args.output_dir else Path(args.ckpt_path).resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"odometry_{sequence:02d}"
    np.save(f"{stem}_poses.npy", result.pred_steps)
    summary = {"checkpoint": str(args.ckpt_path), "sequence": sequence, "split_file": str(split_file),
               "size": list(size), "snippets": len(result.ate), "track_length": TRACK_LENGTH,
               "ate_mean": result.mean, "ate_std": result.std, "pose_net": settings["pose_net"]}
    Path(f"{stem}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"odometry: sequence {sequence:02d}, {len(result.ate)} snippets of up to {TRACK_LENGTH} frames at "
          f"{size[0]}x{size[1]} ({where})")
    print(f"ATE (Monodepth2's evaluate_pose): {result.mean:.4f} +- {result.std:.4f} m")
    print(f"wrote {stem}.json and {stem}_poses.npy")
    return 0
