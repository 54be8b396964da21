"""KITTI raw as video: Monodepth2's split lists, neighbouring frames, JPEG trees and training without
ground truth, on a tiny raw tree written in the published layout."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from data_trees import P_RECT_02, P_RECT_03, write_kitti_calib, write_png
from depthlab.data.kitti import KITTIDataModule, KITTIDataset
from depthlab.data.readers import read_monodepth2_list
from depthlab.errors import ConfigError, DataError

DATE, DRIVE = "2011_09_26", "2011_09_26_drive_0001_sync"
H, W = 12, 20
FRAMES = range(5)  # 0000000000 ... 0000000004 in both cameras


def frame_image(index: int, camera: str) -> np.ndarray:
    """Red = 10 x frame index, green = 100 for image_03 (0 for image_02), blue = the column: a frame
    is recognised by its colour, a mirrored frame by its blue ramp."""
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 0] = 10 * index
    image[..., 1] = 100 if camera == "image_03" else 0
    image[..., 2] = np.arange(W) * 10
    return image


def write_raw(root: Path, ext: str = ".png") -> Path:
    raw = root / "raw"
    write_kitti_calib(raw, DATE, P_RECT_02, P_RECT_03)
    for camera in ("image_02", "image_03"):
        for index in FRAMES:
            path = raw / DATE / DRIVE / camera / "data" / f"{index:010d}{ext}"
            if ext == ".png":
                write_png(path, frame_image(index, camera))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), cv2.cvtColor(frame_image(index, camera), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 100])
    return raw


def write_list(root: Path, lines: list[str], name: str = "train_files.txt") -> Path:
    path = root / name
    path.write_text("\n".join(lines) + "\n")
    return path


def dataset(root: Path, lines: list[str], **kwargs) -> KITTIDataset:
    options = dict(gt_source="none", kb_crop=False, frame_ids=(0, -1, 1)) | kwargs
    return KITTIDataset(write_list(root, lines), root / "raw", None, **options)


def red(sample, key: str) -> float:
    return float(sample[key][0].mean()) * 255 / 10  # the frame index the image encodes


def test_neighbours_are_the_drives_next_frames(tmp_path):
    write_raw(tmp_path)
    data = dataset(tmp_path, [f"{DATE}/{DRIVE} 2 l", f"{DATE}/{DRIVE} 3 r"])
    left, right = data[0], data[1]
    assert (red(left, "image_f-1"), red(left, "image"), red(left, "image_f+1")) == pytest.approx((1, 2, 3), abs=1e-4)
    assert (red(right, "image_f-1"), red(right, "image"), red(right, "image_f+1")) == pytest.approx((2, 3, 4), abs=1e-4)
    assert float(right["image_f+1"][1].mean()) == pytest.approx(100 / 255)  # the r line's camera: image_03
    assert "depth" not in left and "valid" not in left and "image_right" not in left


def test_stereo_frames_come_from_both_cameras_and_r_lines_are_mirrored(tmp_path):
    write_raw(tmp_path)
    data = dataset(tmp_path, [f"{DATE}/{DRIVE} 2 l", f"{DATE}/{DRIVE} 3 r"], frame_ids=(0, -1, 1, "s"))
    left, right = data[0], data[1]
    assert red(left, "image_right_f+1") == pytest.approx(3, abs=1e-4)
    assert float(left["image_right_f+1"][1].mean()) == pytest.approx(100 / 255)
    ramp = np.arange(W) * 10 / 255
    np.testing.assert_allclose(left["image"][2, 0].numpy(), ramp, atol=1e-6)
    # r line: target image_03 mirrored (the blue ramp runs backwards), its right view is image_02 mirrored
    np.testing.assert_allclose(right["image"][2, 0].numpy(), ramp[::-1], atol=1e-6)
    assert float(right["image"][1].mean()) == pytest.approx(100 / 255) and float(right["image_right"][1].mean()) == 0
    assert float(right["image_f-1"][1].mean()) == pytest.approx(100 / 255) and red(right, "image_f-1") == pytest.approx(2)
    cx = P_RECT_03[2]
    assert float(right["intrinsics"][2]) == pytest.approx(W - 1 - cx, abs=1e-3)
    assert float(left["baseline_m"]) == pytest.approx(float(right["baseline_m"]))


def test_a_missing_neighbour_is_one_line_naming_the_list_line(tmp_path):
    write_raw(tmp_path)
    data = dataset(tmp_path, [f"{DATE}/{DRIVE} 1 l", f"{DATE}/{DRIVE} 4 l", f"{DATE}/{DRIVE} 0 l"])
    with pytest.raises(DataError) as info:
        data[1]
    message = str(info.value)
    assert "\n" not in message and message.count("listed at") == 1
    assert f"{DRIVE}/image_02/data/0000000005.png" in message and "no frame +1 of frame 4" in message
    assert message.endswith(f"(listed at {tmp_path / 'train_files.txt'}:2)")
    with pytest.raises(DataError, match=r"no frame -1 of frame 0 .*train_files.txt:3\)$"):
        data[2]
    assert red(data[0], "image_f-1") == pytest.approx(0)


def test_monodepth2_lines_are_checked_per_file(tmp_path):
    write_raw(tmp_path)
    with pytest.raises(DataError) as info:
        dataset(tmp_path, [f"{DATE}/{DRIVE} 2 l", f"{DATE}/{DRIVE} two l", "8 4056 r"])
    problems = [str(p) for p in info.value.problems]
    assert len(problems) == 2 and all("\n" not in p for p in problems)
    assert "got '2011_09_26/2011_09_26_drive_0001_sync two l'" in problems[0] and problems[0].endswith("train_files.txt:2)")
    assert "odometry" in problems[1] and problems[1].endswith("train_files.txt:3)")
    # A BTS list keeps its own format and message
    with pytest.raises(DataError, match="focal 'x' is not a number"):
        dataset(tmp_path, [f"{DATE}/{DRIVE}/image_02/data/0000000002.png None 721.5", f"a b x"])


def test_a_jpeg_tree_reads_with_image_ext(tmp_path):
    write_raw(tmp_path, ".jpg")
    data = dataset(tmp_path, [f"{DATE}/{DRIVE} 2 l"], image_ext=".jpg")
    assert red(data[0], "image_f+1") == pytest.approx(3, abs=0.2)  # JPEG: within a grey level or two
    bts = dataset(tmp_path, [f"{DATE}/{DRIVE}/image_02/data/0000000002.png None 721.5377"], image_ext=".jpg",
                  frame_ids=(0,))
    assert red(bts[0], "image") == pytest.approx(2, abs=0.2)
    with pytest.raises(DataError, match=r"0000000002\.png: missing file"):
        dataset(tmp_path, [f"{DATE}/{DRIVE} 2 l"])[0]  # .png by default: named as such
    with pytest.raises(ConfigError, match="data.image_ext"):
        KITTIDataModule(raw_root=str(tmp_path), image_ext="jpg")


def test_train_without_ground_truth(tmp_path):
    raw = write_raw(tmp_path)
    train = write_list(tmp_path, [f"{DATE}/{DRIVE} 2 l", f"{DATE}/{DRIVE} 3 l"])
    val = write_list(tmp_path, [f"{DATE}/{DRIVE} 2 l", f"{DATE}/{DRIVE} 3 l"], "val_files.txt")
    gt = tmp_path / "gt"
    write_png(gt / "train" / DRIVE / "proj_depth/groundtruth/image_02/0000000002.png",
              np.full((H, W), 256 * 7, np.uint16))  # frame 3 has no annotated map: skipped in val
    module = KITTIDataModule(raw_root=str(raw), gt_root=str(gt), train_list=str(train), val_list=str(val),
                             test_list=str(val), train_gt_source="none", kb_crop=False, frame_ids=[0, -1, 1])
    assert not {"depth", "valid"} & module.provides
    assert {"image", "image_f-1", "image_f+1", "intrinsics"} <= module.provides
    sample = module.dataset("train")[0]
    assert "depth" not in sample and set(module.provides) <= set(sample) | {"baseline_m", "crop_offset", "full_size"}
    assert len(module.dataset("train")) == 2
    val_set = module.dataset("val")
    assert len(val_set) == 1 and val_set.skipped == 1
    assert float(val_set[0]["depth"].max()) == pytest.approx(7.0) and "image_f-1" in val_set[0]
    with pytest.raises(ConfigError, match="data.eval_gt_source must be annotated or velodyne"):
        KITTIDataModule(raw_root=str(raw), eval_gt_source="none")
    with pytest.raises(ConfigError, match="data.frame_ids: must contain 0"):
        KITTIDataModule(raw_root=str(raw), frame_ids=[-1, 1])


def test_monodepth2_reader_builds_raw_paths(tmp_path):
    path = write_list(tmp_path, [f"{DATE}/{DRIVE} 473 r"])
    (entry,) = read_monodepth2_list(path, ".jpg")
    assert entry.rgb == f"{DATE}/{DRIVE}/image_03/data/0000000473.jpg"
    assert entry.depth == f"{DRIVE}/proj_depth/groundtruth/image_03/0000000473.png"
    assert entry.source == f"{path}:1" and np.isnan(entry.focal_px)


def test_a_monodepth2_list_without_ground_truth_trains_m_through_the_module(tmp_path):
    """Monodepth2's M on raw KITTI alone: the eigen_zhou-style list's samples go through the pose
    network and the one photometric loss, gradients reach both networks."""
    import torch

    from depthlab.module import DepthModule

    raw = write_raw(tmp_path)
    rng = np.random.default_rng(0)
    for path in raw.rglob("data/*.png"):  # textured frames: a flat colour gives the photometric loss nothing
        write_png(path, rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    train = write_list(tmp_path, [f"{DATE}/{DRIVE} 2 l", f"{DATE}/{DRIVE} 3 r"])
    module = KITTIDataModule(raw_root=str(raw), train_list=str(train), val_list=str(train), test_list=str(train),
                             train_gt_source="none", eval_gt_source="velodyne", kb_crop=False, frame_ids=[0, -1, 1],
                             batch_size=2, num_workers=0)
    model = DepthModule(net={"name": "unet", "encoder": "resnet18", "decoder_channels": [8, 8, 8, 8], "output": "inverse_depth"},
                        pose_net={"name": "monodepth2", "encoder": "resnet18"}, min_depth=0.1, max_depth=100.0,
                        loss={"name": "photometric", "frame_ids": [0, -1, 1]}, eval_protocol={"name": "kitti", "align": "median"})
    model.loss.check_requirements(module.provides, None, "data")  # what the loss reads is there, depth is not
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    assert "depth" not in batch and batch["image_f-1"].shape == batch["image"].shape == (2, 3, H, W)
    total, _ = model.compute_loss(model(batch["image"]), batch)
    total.backward()
    assert torch.isfinite(total) and total > 0
    for part in (model.net, model.pose_net):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
