"""Own data as video (``sequence: true``): each subfolder is one video, frames in name order."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from depthlab.data.rgbd import RGBDDataModule
from depthlab.errors import ConfigError

H, W = 8, 12
K = [10.0, 10.0, 5.5, 3.5]


def write_videos(root: Path, videos: dict[str, int], right: bool = False) -> Path:
    """``videos``: subfolder -> frame count; frame i of a video is grey level 10 i (+ 100 in the
    right view), its depth i + 1 metres (millimetre PNG)."""
    for video, count in videos.items():
        for i in range(count):
            for folder, level in (("rgb", 10 * i), *((("right", 10 * i + 100),) if right else ())):
                path = root / folder / video / f"frame_{i:03d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), np.full((H, W, 3), level, np.uint8))
            depth = root / "depth" / video / f"frame_{i:03d}.png"
            depth.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(depth), np.full((H, W), 1000 * (i + 1), np.uint16))
    return root


def level(sample, key: str) -> float:
    return round(float(sample[key].mean()) * 255)


def test_neighbours_come_from_the_same_video_by_position(tmp_path, caplog):
    root = write_videos(tmp_path, {"a": 4, "b": 2, "c/deeper": 3})
    module = RGBDDataModule(train=str(root), val=str(root), intrinsics=K, sequence=True, frame_ids=[0, -1, 1],
                            batch_size=1)
    with caplog.at_level(logging.INFO):
        data = module.dataset("train")
    # a: frames 1, 2; b: none (2 frames); c/deeper: frame 1
    assert [r.key for r in data.rows] == ["a/frame_001", "a/frame_002", "c/deeper/frame_001"]
    assert "data.train: 6 of 9 frames are not targets" in caplog.text
    for index, (before, target, after) in enumerate([(0, 10, 20), (10, 20, 30), (0, 10, 20)]):
        sample = data[index]
        assert (level(sample, "image_f-1"), level(sample, "image"), level(sample, "image_f+1")) == (before, target, after)
        assert float(sample["depth"].max()) == pytest.approx(target / 10 + 1)
    assert set(data[0]) == module.provides
    assert {"image_f-1", "image_f+1", "intrinsics"} <= module.provides


def test_stereo_videos_carry_the_right_views_frames(tmp_path):
    root = write_videos(tmp_path, {"a": 3}, right=True)
    module = RGBDDataModule(train=str(root), val=str(root), intrinsics=K, baseline_m=0.1, sequence=True,
                            frame_ids=[0, 1, "s"])
    sample = module.dataset("train")[0]
    assert level(sample, "image_right_f+1") == 110 and level(sample, "image_f+1") == 10
    assert set(sample) == module.provides
    flipped = RGBDDataModule(train=str(root), val=str(root), intrinsics=K, baseline_m=0.1, sequence=True,
                             frame_ids=[0, 1, "s"], train_transforms=[{"name": "HorizontalFlip", "p": 1.0}])
    assert level(flipped.dataset("train")[0], "image_f+1") == 110  # swapped with the views


def test_video_settings_are_checked(tmp_path):
    root = write_videos(tmp_path, {"a": 3})
    with pytest.raises(ConfigError, match="data.frame_ids: temporal frames \\[-1\\] need data.sequence: true"):
        RGBDDataModule(train=str(root), frame_ids=[0, -1])
    with pytest.raises(ConfigError, match="data.intrinsics: video frames .* need the camera"):
        RGBDDataModule(train=str(root), val=str(root), sequence=True, frame_ids=[0, -1]).dataset("train")
    with pytest.raises(ConfigError, match="data.train: no frame has all its neighbours \\[-2, 2\\]"):
        RGBDDataModule(train=str(root), val=str(root), sequence=True, intrinsics=K,
                       frame_ids=[0, -2, 2]).dataset("train")
    with pytest.raises(ConfigError, match="data.frame_ids: 's' .* needs right views"):
        RGBDDataModule(train=str(root), val=str(root), sequence=True, intrinsics=K, frame_ids=[0, 1, "s"]).provides
