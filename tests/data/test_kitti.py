"""KITTI: a 3-drive tree in the published layout, loaded through KITTIDataModule; exact values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthlab.data import KITTIDataModule
from depthlab.data.base import resolve_path
from depthlab.data.kitti import KB_CROP, kb_crop_box, velodyne_to_depth
from depthlab.data.readers import read_split_list
from depthlab.errors import ConfigError

from data_trees import P_RECT_02, P_RECT_02_B, VELO_R, build_kitti


def _module(tree, **kwargs) -> KITTIDataModule:
    args = dict(raw_root=str(tree.raw_root), gt_root=str(tree.gt_root), train_list=str(tree.list_path),
                val_list=str(tree.list_path), test_list=str(tree.list_path), batch_size=2, num_workers=0,
                eval_kb_crop=True)
    return KITTIDataModule(**(args | kwargs))


def test_kb_crop_box_matches_spec():
    assert kb_crop_box(375, 1242) == (23, 13)  # BTS: top = 375 - 352, left = (1242 - 1216) // 2
    assert kb_crop_box(370, 1226) == (18, 5)


def test_none_lines_are_skipped_and_counted(kitti_tree):
    ds = _module(kitti_tree).dataset("test")
    assert len(ds) == 4 and ds.skipped == 1
    assert [e.source.rsplit(":", 1)[1] for e in ds.entries] == ["1", "2", "4", "5"]


@pytest.mark.parametrize("index", [0, 3])  # a 375x1242 drive (gt in train/) and a 370x1226 one
def test_depth_image_mask_crop_and_calibration_exact(kitti_tree, index):
    ds = _module(kitti_tree).dataset("test")
    frame = kitti_tree.frames[index]
    h, w = frame["size"]
    top, left = kb_crop_box(h, w)
    sample = ds[index]
    assert sample["image"].shape == (3, *KB_CROP) and sample["depth"].shape == (1, *KB_CROP)
    window = (slice(top, top + 352), slice(left, left + 1216))
    raw = frame["depth_raw"][window]
    assert torch.equal(sample["depth"][0], torch.from_numpy(raw.astype(np.float32) / 256))
    assert torch.equal(sample["valid"][0], torch.from_numpy(raw > 0))
    expected_image = torch.from_numpy(frame["left"][window]).permute(2, 0, 1).float() / 255
    assert torch.equal(sample["image"], expected_image)
    p02, p03 = frame["p02"], frame["p03"]
    fx, fy, cx, cy = sample["intrinsics"].tolist()
    assert fx == pytest.approx(p02[0]) and fy == pytest.approx(p02[5])
    assert cx == pytest.approx(p02[2] - left) and cy == pytest.approx(p02[6] - top)
    baseline = p03[3] / -p03[0] - p02[3] / -p02[0]
    assert sample["baseline_m"].item() == pytest.approx(baseline, rel=1e-6)
    assert 0.52 < sample["baseline_m"].item() < 0.56  # the KITTI rig, about 0.54 m
    assert sample["crop_offset"].tolist() == [top, left] and sample["full_size"].tolist() == [h, w]


def test_baseline_of_2011_09_26_by_hand(kitti_tree):
    sample = _module(kitti_tree).dataset("test")[0]
    # (339.5242 + 44.85728) / 721.5377 = 384.38148 / 721.5377 = 0.532725
    assert sample["baseline_m"].item() == pytest.approx(0.532725, abs=1e-6)
    assert sample["intrinsics"][0].item() == pytest.approx(721.5377)


def test_gt_found_in_val_subfolder(kitti_tree):
    sample = _module(kitti_tree).dataset("test")[2]  # drive_0002 lives under gt/val/
    frame = kitti_tree.frames[2]
    assert torch.equal(sample["depth"][0], torch.from_numpy(frame["depth_raw"][23:, 13:1229] / np.float32(256)))


def test_eval_frames_are_full_size_by_default_one_at_a_time(kitti_tree):
    dm = KITTIDataModule(raw_root=str(kitti_tree.raw_root), gt_root=str(kitti_tree.gt_root),
                         test_list=str(kitti_tree.list_path), num_workers=0)
    assert dm.eval_batch_size == 1 and dm.dataset("train").kb_crop and not dm.dataset("test").kb_crop
    with pytest.raises(ConfigError, match="eval_batch_size"):
        KITTIDataModule(eval_batch_size=4)
    sample = dm.dataset("test")[3]
    assert torch.equal(sample["depth"][0], torch.from_numpy(kitti_tree.frames[3]["depth_raw"] / np.float32(256)))
    assert sample["image"].shape == (3, 370, 1226)
    assert sample["intrinsics"].tolist() == pytest.approx([P_RECT_02_B[0], P_RECT_02_B[5], P_RECT_02_B[2], P_RECT_02_B[6]])
    assert sample["crop_offset"].tolist() == [0, 0]


def test_stereo_sample_carries_right_view_and_its_depth(kitti_tree):
    sample = _module(kitti_tree, stereo=True).dataset("test")[0]
    frame = kitti_tree.frames[0]
    window = (slice(23, 375), slice(13, 1229))
    assert torch.equal(sample["image_right"], torch.from_numpy(frame["right"][window]).permute(2, 0, 1).float() / 255)
    expected = frame["depth_right_raw"][window].astype(np.float32) / 256
    assert torch.equal(sample["depth_right"][0], torch.from_numpy(expected))
    assert torch.equal(sample["valid_right"][0], torch.from_numpy(expected > 0))


def test_training_batches_with_augmentation(kitti_tree):
    dm = _module(kitti_tree, stereo=True, train_transforms=[
        {"name": "RandomCrop", "height": 352, "width": 704},
        {"name": "HorizontalFlip", "p": 0.5},
        {"name": "ChannelScale", "scale_range": [0.8, 1.2]},
    ])
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 352, 704) and batch["image_right"].shape == (2, 3, 352, 704)
    assert batch["depth"].shape == (2, 1, 352, 704) and batch["valid"].dtype == torch.bool
    assert torch.equal(batch["valid"], batch["depth"] > 0)
    val = next(iter(dm.val_dataloader()))
    assert val["depth"].shape == (2, 1, 352, 1216) and val["index"].tolist() == [0, 1]


def test_focal_from_calibration_not_from_the_list(tmp_path):
    tree = build_kitti(tmp_path)
    text = tree.list_path.read_text().replace(" 721.5377", " 700.0")
    tree.list_path.write_text(text)
    ds = _module(tree).dataset("test")
    assert ds[0]["intrinsics"][0].item() == pytest.approx(721.5377)
    problems = ds.problems(0)
    assert [p.kind for p in problems] == ["focal mismatch"] and "calib_cam_to_cam.txt" in problems[0].path


def _velodyne_point(u: int, v: int, z: float, p) -> list[float]:
    """A scanner point that projects (with the published round(.) - 1) onto pixel (u, v) at depth z."""
    f, cx, cy, tx, ty, tz = p[0], p[2], p[6], p[3], p[7], p[11]
    x_cam = ((u + 1) * (z + tz) - cx * z - tx) / f
    y_cam = ((v + 1) * (z + tz) - cy * z - ty) / f
    return [z, -x_cam, -y_cam, 0.5]  # scanner frame: x forward, y left, z up


def test_velodyne_projection_nearest_point_wins():
    velo_to_cam = np.eye(4)
    velo_to_cam[:3, :3] = np.array(VELO_R, dtype=float).reshape(3, 3)
    p = np.array(P_RECT_02).reshape(3, 4)
    points = np.array([
        _velodyne_point(600, 200, 10.0, P_RECT_02),
        _velodyne_point(600, 200, 5.0, P_RECT_02),  # same pixel, nearer: wins
        _velodyne_point(100, 300, 20.0, P_RECT_02),
        [-5.0, 0.0, 0.0, 1.0],  # behind the scanner
        _velodyne_point(5000, 200, 10.0, P_RECT_02),  # outside the image
    ], dtype=np.float32)
    depth = velodyne_to_depth(points, velo_to_cam, np.eye(4), p, (375, 1242))
    assert depth[200, 600] == pytest.approx(5.0 + P_RECT_02[11], abs=1e-4)
    assert depth[300, 100] == pytest.approx(20.0 + P_RECT_02[11], abs=1e-4)
    assert np.count_nonzero(depth) == 2


def test_velodyne_ground_truth_through_the_module(kitti_tree):
    frame = kitti_tree.frames[0]
    scan = kitti_tree.raw_root / frame["date"] / frame["drive"] / "velodyne_points" / "data" / "0000000005.bin"
    scan.parent.mkdir(parents=True)
    np.array([_velodyne_point(600, 200, 12.0, P_RECT_02)], dtype=np.float32).tofile(scan)
    dm = _module(kitti_tree, eval_gt_source="velodyne", gt_root=None)
    ds = dm.dataset("test")
    assert len(ds) == 5 and ds.skipped == 0  # with Velodyne ground truth no line is skipped
    sample = ds[0]
    assert sample["depth"][0, 200 - 23, 600 - 13].item() == pytest.approx(12.0 + P_RECT_02[11], abs=1e-4)
    assert sample["valid"].sum() == 1


def test_shipped_eigen_lists_are_the_module_defaults():
    dm = KITTIDataModule(raw_root="unused", gt_root="unused")
    test = read_split_list(resolve_path(dm.lists["test"]))
    train = read_split_list(resolve_path(dm.lists["train"]))
    assert len(test) == 697 and sum(e.depth is None for e in test) == 45
    assert len(train) == 23158 and all(e.depth is not None for e in train)
    assert dm.lists == {"train": "data/splits/eigen_train_files_with_gt.txt",
                        "val": "data/splits/eigen_test_files_with_gt.txt",
                        "test": "data/splits/eigen_test_files_with_gt.txt"}
