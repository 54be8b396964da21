"""Builders of tiny data trees in the exact published on-disk formats (KITTI raw + annotated depth, NYU .mat, NYU lists).

Every value is a function of its pixel so that tests can state the expected depth exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import h5py
import numpy as np
import scipy.io

# Rectified projections of 2011_09_26 (KITTI raw calib_cam_to_cam.txt, 12 numbers row-major).
P_RECT_02 = [7.215377e02, 0, 6.095593e02, 4.485728e01, 0, 7.215377e02, 1.728540e02, 2.163791e-01, 0, 0, 1, 2.745884e-03]
P_RECT_03 = [7.215377e02, 0, 6.095593e02, -3.395242e02, 0, 7.215377e02, 1.728540e02, 2.199936e00, 0, 0, 1, 2.729905e-03]
# 2011_09_30 (a second date, another image size).
P_RECT_02_B = [7.070912e02, 0, 6.018873e02, 4.688783e01, 0, 7.070912e02, 1.831104e02, 1.178601e-01, 0, 0, 1, 6.203223e-03]
P_RECT_03_B = [7.070912e02, 0, 6.018873e02, -3.334597e02, 0, 7.070912e02, 1.831104e02, 1.930130e00, 0, 0, 1, 3.318498e-03]
# Velodyne -> camera 0: x forward, y left, z up -> x right, y down, z forward (no offset).
VELO_R = [0, -1, 0, 0, 0, -1, 1, 0, 0]


def _fmt(values) -> str:
    return " ".join(f"{v:.6e}" for v in values)


def kitti_image(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth RGB image (compresses well), distinct per seed."""
    v, u = np.mgrid[0:height, 0:width]
    rgb = np.stack([(u + 7 * seed) % 256, (v * 2 + 11 * seed) % 256, ((u + v) // 3 + seed) % 256], axis=-1)
    return rgb.astype(np.uint8)


def kitti_depth_raw(height: int, width: int, seed: int) -> np.ndarray:
    """uint16 annotated depth: value 256 * (1 + (u + 3 v + seed) % 70) + (u % 256), 0 on every 4th column."""
    v, u = np.mgrid[0:height, 0:width]
    raw = 256 * (1 + (u + 3 * v + seed) % 70) + (u % 256)
    raw[:, ::4] = 0
    return raw.astype(np.uint16)


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), array, [cv2.IMWRITE_PNG_COMPRESSION, 1])


@dataclass
class KittiTree:
    raw_root: Path
    gt_root: Path
    list_path: Path
    frames: list[dict] = field(default_factory=list)  # one per list line, in order


SCENES = [  # (date, drive, (H, W), P_rect_02, P_rect_03, gt subfolder, frame numbers)
    ("2011_09_26", "2011_09_26_drive_0001_sync", (375, 1242), P_RECT_02, P_RECT_03, "train", [5, 6]),
    ("2011_09_26", "2011_09_26_drive_0002_sync", (375, 1242), P_RECT_02, P_RECT_03, "val", [69]),
    ("2011_09_30", "2011_09_30_drive_0016_sync", (370, 1226), P_RECT_02_B, P_RECT_03_B, "train", [10]),
]


def write_kitti_calib(raw_root: Path, date: str, p02, p03) -> None:
    folder = raw_root / date
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\ncorner_dist: 9.950000e-02\n"
        f"R_rect_00: {_fmt([1, 0, 0, 0, 1, 0, 0, 0, 1])}\n"
        f"P_rect_00: {_fmt(p02[:3] + [0] + p02[4:7] + [0, 0, 0, 1, 0])}\n"
        f"P_rect_02: {_fmt(p02)}\nP_rect_03: {_fmt(p03)}\n"
    )
    (folder / "calib_velo_to_cam.txt").write_text(
        f"calib_time: 15-Mar-2012 11:37:16\nR: {_fmt(VELO_R)}\nT: {_fmt([0, 0, 0])}\n"
        "delta_f: 0.000000e+00 0.000000e+00\n"
    )


def build_kitti(root: Path, stereo_gt: bool = True) -> KittiTree:
    """Three drives over two dates; gt split over train/ and val/ as the download has it.

    The list has one line per frame plus a ``None`` line (a frame without annotated depth).
    """
    tree = KittiTree(root / "raw", root / "gt", root / "eigen_test.txt")
    lines = []
    seed = 0
    for date, drive, (h, w), p02, p03, sub, frame_ids in SCENES:
        write_kitti_calib(tree.raw_root, date, p02, p03)
        for n in frame_ids:
            name = f"{n:010d}.png"
            left, right = kitti_image(h, w, seed), kitti_image(h, w, seed + 1)
            depth, depth_r = kitti_depth_raw(h, w, seed), kitti_depth_raw(h, w, seed + 5)
            write_png(tree.raw_root / date / drive / "image_02" / "data" / name, left)
            write_png(tree.raw_root / date / drive / "image_03" / "data" / name, right)
            gt_rel = f"{drive}/proj_depth/groundtruth/image_02/{name}"
            write_png(tree.gt_root / sub / gt_rel, depth)
            if stereo_gt:
                write_png(tree.gt_root / sub / gt_rel.replace("image_02", "image_03"), depth_r)
            lines.append(f"{date}/{drive}/image_02/data/{name} {gt_rel} {p02[0]:.4f}")
            tree.frames.append(dict(date=date, drive=drive, size=(h, w), left=left, right=right, depth_raw=depth,
                                    depth_right_raw=depth_r, p02=p02, p03=p03, frame=n))
            seed += 2
    # A frame without annotated depth: BTS writes None.
    date, drive = SCENES[0][0], SCENES[0][1]
    write_png(tree.raw_root / date / drive / "image_02" / "data" / "0000000099.png", kitti_image(375, 1242, 99))
    lines.insert(2, f"{date}/{drive}/image_02/data/0000000099.png None 721.5377")
    tree.list_path.write_text("\n".join(lines) + "\n")
    return tree


# -- NYU ------------------------------------------------------------------------------------------
NYU_H, NYU_W = 480, 640


def nyu_frame(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame k (1-based): image (480, 640, 3) uint8, filled depth and raw depth (480, 640) float32 m."""
    v, u = np.mgrid[0:NYU_H, 0:NYU_W]
    image = np.stack([(u + k) % 256, (v + 2 * k) % 256, np.full_like(u, 10 * k)], axis=-1).astype(np.uint8)
    depths = (0.5 + 0.01 * ((u + 2 * v + k) % 900)).astype(np.float32)
    raw = depths.copy()
    raw[(u + v) % 5 == 0] = 0  # Kinect holes
    return image, depths, raw


MATLAB_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan 1 00:00:00 2012 HDF5 schema 1.00 ."


def write_nyu_mat(path: Path, count: int) -> None:
    """The labeled file's layout: MATLAB 480x640x3xN is stored as HDF5 (N, 3, 640, 480)."""
    with h5py.File(path, "w", userblock_size=512) as f:
        images = f.create_dataset("images", (count, 3, NYU_W, NYU_H), dtype=np.uint8)
        depths = f.create_dataset("depths", (count, NYU_W, NYU_H), dtype=np.float32)
        raw = f.create_dataset("rawDepths", (count, NYU_W, NYU_H), dtype=np.float32)
        for k in range(1, count + 1):
            image, filled, holes = nyu_frame(k)
            images[k - 1] = image.transpose(2, 1, 0)  # (H, W, C) -> MATLAB's reversed (C, W, H)
            depths[k - 1] = filled.T
            raw[k - 1] = holes.T
    with open(path, "r+b") as f:  # MATLAB writes its text header into the HDF5 user block
        f.write(MATLAB_HEADER)


@dataclass
class NyuMat:
    mat_path: Path
    splits_path: Path
    train: list[int]
    test: list[int]


def build_nyu_mat(tmp_path: Path) -> NyuMat:
    mat = tmp_path / "nyu_depth_v2_labeled.mat"
    write_nyu_mat(mat, 4)
    splits = tmp_path / "splits.mat"
    train, test = [1, 3], [2, 4]
    scipy.io.savemat(splits, {"trainNdxs": np.array(train, np.uint16)[:, None],
                              "testNdxs": np.array(test, np.uint16)[:, None]})
    return NyuMat(mat, splits, train, test)


@dataclass
class NyuList:
    train_root: Path
    eval_root: Path
    train_list: Path
    test_list: Path
    frames: dict[str, tuple[np.ndarray, np.ndarray]]  # rgb rel path -> (image, depth_mm uint16)


def build_nyu_list(tmp_path: Path) -> NyuList:
    """BTS layout: ``sync/<scene>/rgb_*.jpg`` listed with a leading '/', test PNGs under official_splits."""
    tree = NyuList(tmp_path / "sync", tmp_path / "official_splits" / "test", tmp_path / "train.txt",
                   tmp_path / "test.txt", {})
    train_lines, test_lines = [], []
    for k, (root, scene, lines, lead) in enumerate([(tree.train_root, "kitchen_0028b", train_lines, "/"),
                                                    (tree.train_root, "office_0003", train_lines, "/"),
                                                    (tree.eval_root, "bathroom", test_lines, "")], start=1):
        image, _, raw = nyu_frame(k)
        depth_mm = np.rint(raw * 1000).astype(np.uint16)
        rgb, dep = f"{scene}/rgb_{k:05d}.png", f"{scene}/sync_depth_{k:05d}.png"
        write_png(root / rgb, image)
        write_png(root / dep, depth_mm)
        lines.append(f"{lead}{rgb} {lead}{dep} 518.8579")
        tree.frames[rgb] = (image, depth_mm)
    tree.train_list.write_text("\n".join(train_lines) + "\n")
    tree.test_list.write_text("\n".join(test_lines) + "\n")
    return tree
