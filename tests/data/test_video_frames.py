"""Video frames in a sample (``data.frame_ids``): the key convention of ``depthlab.data.keys`` and how
augmentation, tensor conversion and cropping treat ``image_f{k:+d}`` and ``pose_f{k:+d}``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthlab.data.keys import (
    check_frame_ids, crop_batch, frame_keys, frame_suffix, is_spatial, parse_frame_key, view_keys,
)
from depthlab.data.pipeline import to_tensors
from depthlab.data.transforms import DepthAugment, HorizontalFlip
from depthlab.errors import ConfigError

H, W = 40, 60
K = np.array([50.0, 50.0, 29.5, 19.5])


def _pose(yaw: float, t: tuple[float, float, float]) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    pose = np.eye(4, dtype=np.float32)
    pose[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    pose[:3, 3] = t
    return pose


def _sample(stereo: bool) -> dict:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    sample = {"image": image, "depth": rng.uniform(1, 9, (H, W)).astype(np.float32), "intrinsics": K.copy(),
              "image_f-1": image.copy(), "image_f+1": image.copy(),
              "pose_f-1": _pose(0.02, (0.01, 0.0, 0.2)), "pose_f+1": _pose(-0.02, (-0.01, 0.0, -0.2))}
    if stereo:
        sample |= {"image_right": rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "baseline_m": 0.54}
    return sample


def test_the_key_convention():
    assert frame_suffix(-1) == "_f-1" and frame_suffix(1) == "_f+1" and frame_suffix(12) == "_f+12"
    assert frame_keys([0, -1, 1]) == {"image_f-1", "image_f+1"}
    assert frame_keys([0, -1, 1, "s"]) == {"image_f-1", "image_f+1", "image_right_f-1", "image_right_f+1"}
    assert frame_keys([0, -1, 1], poses=True) == {"image_f-1", "image_f+1", "pose_f-1", "pose_f+1"}
    assert frame_keys([0]) == frozenset() and frame_keys([0, "s"]) == frozenset()
    assert view_keys(["image"], stereo=False, frame_ids=[0, -1, 1]) == {"image", "image_f-1", "image_f+1"}
    assert parse_frame_key("image_f-1") == ("image", -1) and parse_frame_key("pose_f+2") == ("pose", 2)
    assert parse_frame_key("image_right_f-1") == ("image_right", -1) and is_spatial("image_right_f-1")
    for key in ("image", "image_right", "image_f0", "image_f1", "image_f-01", "depth_right"):
        assert parse_frame_key(key) is None, key
    assert is_spatial("image_f+3") and not is_spatial("pose_f+3") and not is_spatial("depth_f-1")
    with pytest.raises(ValueError, match="non-zero"):
        frame_suffix(0)


@pytest.mark.parametrize("ids, match", [([-1, 1], "must contain 0"), ([0, 0.5], "0.5"), ([0, "r"], "'r'"),
                                        ([0, 1, 1], "repeated"), ("0,-1,1", "expected a list"), ([0, True], "True")])
def test_bad_frame_ids_are_one_line_naming_the_key(ids, match):
    with pytest.raises(ConfigError, match=match) as info:
        check_frame_ids(ids)
    assert str(info.value).startswith("data.frame_ids: ") and "\n" not in str(info.value)
    assert check_frame_ids([0, -1, 1, "s"]) == (0, -1, 1, "s")


AUGMENT = [{"name": "EigenScale", "scale_range": [1.25, 1.25], "p": 1.0},
           {"name": "RandomCrop", "height": 30, "width": 50},
           {"name": "HorizontalFlip", "p": 1.0},
           {"name": "ColorJitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1, "p": 1.0}]


def test_frames_get_the_targets_draw_geometric_and_photometric():
    sample = _sample(stereo=False)
    out = to_tensors(DepthAugment.from_config(AUGMENT)(sample))
    assert out["image_f-1"].shape == (3, 30, 50) and out["image_f-1"].dtype == torch.float32
    assert torch.equal(out["image_f-1"], out["image"]) and torch.equal(out["image_f+1"], out["image"])
    assert not torch.equal(out["image"], to_tensors(sample)["image"][:, :30, :50])  # it did change


def test_a_flip_mirrors_frames_and_poses_in_place():
    sample = _sample(stereo=False)
    out = DepthAugment([HorizontalFlip(p=1.0)])(sample)
    assert np.array_equal(out["image_f-1"], sample["image_f-1"][:, ::-1])
    s = np.diag([-1.0, 1.0, 1.0, 1.0])
    for key in ("pose_f-1", "pose_f+1"):
        np.testing.assert_allclose(out[key], s @ sample[key] @ s, atol=1e-7)
        assert out[key][0, 3] == -sample[key][0, 3] and out[key][0, 2] == -sample[key][0, 2]


def test_a_stereo_flip_swaps_the_frames_with_the_views():
    """The mirrored right camera becomes the target: its frames and its motion come with it."""
    sample = _sample(stereo=True)
    rng = np.random.default_rng(1)
    sample |= {f"image_right_f{k}": rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for k in ("-1", "+1")}
    out = DepthAugment([HorizontalFlip(p=1.0)])(sample)
    assert np.array_equal(out["image"], sample["image_right"][:, ::-1])
    assert np.array_equal(out["image_f-1"], sample["image_right_f-1"][:, ::-1])
    assert np.array_equal(out["image_right_f+1"], sample["image_f+1"][:, ::-1])
    s, shift = np.diag([-1.0, 1.0, 1.0, 1.0]), np.eye(4)
    shift[0, 3] = 0.54  # right camera = left + b x: X_right = X_left - b x
    right_motion = np.linalg.inv(shift) @ sample["pose_f-1"] @ shift
    np.testing.assert_allclose(out["pose_f-1"], s @ right_motion @ s, atol=1e-6)
    del sample["image_right_f+1"]
    with pytest.raises(ValueError, match="image_f\\+1 needs image_right_f\\+1"):
        DepthAugment([HorizontalFlip(p=1.0)])(sample)


def test_poses_follow_zoom_and_rotation():
    sample = _sample(stereo=False)
    zoomed = DepthAugment.from_config([{"name": "EigenScale", "scale_range": [2.0, 2.0], "p": 1.0}])(sample)
    np.testing.assert_allclose(zoomed["pose_f-1"][:3, 3], sample["pose_f-1"][:3, 3] / 2, rtol=1e-6)
    np.testing.assert_array_equal(zoomed["pose_f-1"][:3, :3], sample["pose_f-1"][:3, :3])
    # Rotating the image by +90 degrees moves a point right of the principal point (W=60, H=40:
    # it is the centre) above it: the camera's +x becomes -y, so does the translation's x.
    sample["pose_f-1"] = _pose(0.0, (0.3, 0.0, 0.5))
    sample["image"] = np.zeros_like(sample["image"])
    sample["image"][19:21, 38:41] = 255  # right of the centre (29.5, 19.5)
    rotated = DepthAugment.from_config([{"name": "Rotate", "limit": [90, 90], "p": 1.0}])(sample)
    rows, cols = np.nonzero(rotated["image"][..., 0] > 127)
    assert abs(cols.mean() - 29.5) < 1 and rows.mean() < 19.5 - 8  # moved above the centre
    np.testing.assert_allclose(rotated["pose_f-1"][:3, 3], [0.0, -0.3, 0.5], atol=1e-6)
    np.testing.assert_allclose(rotated["pose_f-1"][:3, :3], np.eye(3), atol=1e-6)


def test_to_tensors_and_crop_batch_know_the_frames():
    out = to_tensors(_sample(stereo=False))
    assert out["pose_f-1"].shape == (4, 4) and out["pose_f-1"].dtype == torch.float32
    batch = {k: v[None] for k, v in out.items()}
    cut = crop_batch(batch, 2, 3, 10, 20)
    assert cut["image_f+1"].shape == (1, 3, 10, 20)
    assert torch.equal(cut["image_f+1"], batch["image_f+1"][..., 2:12, 3:23])
    assert torch.equal(cut["pose_f-1"], batch["pose_f-1"])  # the camera's motion is the window's too
