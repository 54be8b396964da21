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


# -- procedural videos ----------------------------------------------------------------------------------
def _warp(source: torch.Tensor, depth: torch.Tensor, k: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``source`` seen from the target camera: back-project each target pixel with its depth,
    move it by ``pose`` (target -> source camera), project, sample bilinearly (pixel centres at
    integers: align_corners=True). Returns the warped (3, H, W) image and where it is inside."""
    height, width = depth.shape[-2:]
    fx, fy, cx, cy = k.double().tolist()
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                          indexing="ij")
    z = depth.double().reshape(height, width)
    points = torch.stack([(u - cx) / fx * z, (v - cy) / fy * z, z]).reshape(3, -1)
    moved = pose.double()[:3, :3] @ points + pose.double()[:3, 3:]
    us, vs = fx * moved[0] / moved[2] + cx, fy * moved[1] / moved[2] + cy
    grid = torch.stack([2 * us / (width - 1) - 1, 2 * vs / (height - 1) - 1], -1).reshape(1, height, width, 2)
    warped = torch.nn.functional.grid_sample(source[None].double(), grid, align_corners=True)[0]
    inside = (us >= 0) & (us <= width - 1) & (vs >= 0) & (vs <= height - 1) & (moved[2] > 0)
    return warped.float(), inside.reshape(height, width)


def _median_error(sample: dict, k: str, pose: torch.Tensor | None = None) -> float:
    pose = sample[f"pose_f{k}"] if pose is None else pose
    warped, inside = _warp(sample[f"image_f{k}"], sample["depth"], sample["intrinsics"], pose)
    visible = inside & sample["valid"][0]
    assert visible.float().mean() > 0.8
    return float((warped - sample["image"]).abs().mean(0)[visible].median())


def _video(frame_ids, transforms=None, size=2):
    from depthlab.data.synthetic import SyntheticDataModule

    # 144x192: the procedural textures are point-sampled; smaller images alias them too much for a
    # bilinear warp to reproduce a rendered frame.
    return SyntheticDataModule(height=144, width=192, train_size=size, frame_ids=frame_ids,
                               train_transforms=transforms).dataset("train")


def test_procedural_video_is_a_pure_function_of_the_index():
    from depthlab.data.synthetic import SyntheticDataModule

    small = dict(height=24, width=32, train_size=2, frame_ids=[0, -1, 1, "s"])
    a, b = SyntheticDataModule(**small).dataset("train"), SyntheticDataModule(**small).dataset("train")
    first, again, other = a[1], b[1], a[0]
    assert set(first) == SyntheticDataModule(**small).provides
    assert {"image_f-1", "image_right_f+1", "pose_f-1", "baseline_m"} <= set(first)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not torch.equal(first["pose_f-1"], other["pose_f-1"])  # each sample drives its own way
    plain = SyntheticDataModule(height=24, width=32, train_size=2).dataset("train")[1]
    assert torch.equal(plain["image"], first["image"]) and torch.equal(plain["image_right"], first["image_right"])
    mono = SyntheticDataModule(**(small | {"frame_ids": [0, 1]}))
    assert mono.provides == {"image", "image_f+1", "pose_f+1", "depth", "valid", "intrinsics", "index"}
    # forward motion with a small turn: frame +1 is ahead (target points come nearer), frame -1 behind
    pose = first["pose_f+1"]
    assert 0.1 <= -pose[2, 3] <= 0.2 and 0.1 <= first["pose_f-1"][2, 3] <= 0.2
    assert 0.5 <= np.degrees(np.arccos(float(pose[0, 0]))) <= 2.0


def test_ground_truth_pose_warps_the_neighbours_onto_the_target():
    dataset = _video([0, -1, 1])
    for index in (1,):
        sample = dataset[index]
        for k in ("-1", "+1"):
            error = _median_error(sample, k)
            assert error < 0.004, (index, k, error)
            # a wrong motion does not: standing still, or driving the other way
            assert _median_error(sample, k, torch.eye(4)) > 5 * error
            assert _median_error(sample, k, torch.linalg.inv(sample[f"pose_f{k}"])) > 5 * error


@pytest.mark.parametrize("frame_ids", [[0, -1], [0, -1, "s"]])
def test_flipped_samples_keep_pose_and_frames_consistent(frame_ids):
    """A flip (a stereo flip: the mirrored right camera becomes the target) still warps exactly."""
    plain = _video(frame_ids, size=1)[0]
    flipped = _video(frame_ids, [{"name": "HorizontalFlip", "p": 1.0}], size=1)[0]
    stereo = "s" in frame_ids
    assert torch.equal(flipped["image"], (plain["image_right"] if stereo else plain["image"]).flip(-1))
    assert not torch.allclose(flipped["pose_f-1"], plain["pose_f-1"])
    assert _median_error(flipped, "-1") < 0.004
    if stereo:  # the mirrored left camera's frame does not fit the new target
        wrong = dict(flipped, **{"image_f-1": flipped["image_right_f-1"]})
        assert _median_error(wrong, "-1") > 3 * _median_error(flipped, "-1")


def test_procedural_frame_ids_are_checked():
    from depthlab.data.synthetic import SyntheticDataModule

    with pytest.raises(ConfigError, match="data.frame_ids: must contain 0"):
        SyntheticDataModule(frame_ids=[-1, 1])
    with pytest.raises(ConfigError, match="data.frame_ids: procedural videos reach 2 frames"):
        SyntheticDataModule(frame_ids=[0, 3])


def test_trajectory_speed_is_an_option_with_the_same_turn():
    from depthlab.data.synthetic import SyntheticDataModule

    small = dict(height=16, width=24, train_size=1, frame_ids=[0, -1, 1])
    slow = SyntheticDataModule(**small).dataset("train")[0]
    fast = SyntheticDataModule(**small, trajectory_speed_m=[0.3, 0.45]).dataset("train")[0]
    assert 0.3 <= float(fast["pose_f-1"][2, 3]) <= 0.45 and 0.1 <= float(slow["pose_f-1"][2, 3]) <= 0.2
    assert torch.equal(fast["pose_f+1"][:3, :3], slow["pose_f+1"][:3, :3])  # one draw: the same turn
    assert torch.equal(fast["image"], slow["image"]) and not torch.equal(fast["image_f+1"], slow["image_f+1"])
    with pytest.raises(ConfigError, match=r"data.trajectory_speed_m: frame -2 would sit 0.6 m behind"):
        SyntheticDataModule(frame_ids=[0, -2, 2], trajectory_speed_m=[0.2, 0.3])
    with pytest.raises(ConfigError, match=r"data.trajectory_speed_m: expected \[low, high\]"):
        SyntheticDataModule(frame_ids=[0, 1], trajectory_speed_m=[0.3, 0.1])


def test_trajectory_heading_turns_the_direction_of_travel_only():
    """An offset heading moves the camera along a direction turned from the optical axis by the
    drawn angle: the speed, the turn and the target frame stay those of the straight-ahead video,
    and a heading range of 0 is the straight-ahead video bit for bit."""
    import math

    from depthlab.data.synthetic import SyntheticDataModule, sample_trajectory

    small = dict(height=16, width=24, train_size=4, frame_ids=[0, -1, 1])
    ahead = SyntheticDataModule(**small).dataset("train")
    zero = SyntheticDataModule(**small, trajectory_heading_deg=0).dataset("train")
    turned = SyntheticDataModule(**small, trajectory_heading_deg=30).dataset("train")
    headings = []
    for index in range(4):
        a, z, t = ahead[index], zero[index], turned[index]
        assert all(torch.equal(a[key], z[key]) for key in a if isinstance(a[key], torch.Tensor))
        speed, yaw, heading = sample_trajectory(0, "train", index, heading_deg=30)
        assert abs(heading) <= math.radians(30)
        headings.append(heading)
        for k in (-1, 1):
            moved = torch.linalg.inv(t[f"pose_f{k:+d}"].double())  # frame k's camera in the target's frame
            straight = torch.linalg.inv(a[f"pose_f{k:+d}"].double())
            assert torch.allclose(moved[:3, :3], straight[:3, :3], atol=1e-6)  # the same turn
            x, z_ = float(moved[0, 3]), float(moved[2, 3])
            assert math.isclose(math.hypot(x, z_), speed, rel_tol=1e-5)  # the same distance
            assert math.isclose(math.atan2(k * x, k * z_), k * yaw / 2 + heading, abs_tol=1e-5)
        assert torch.equal(a["image"], t["image"]) and not torch.equal(a["image_f+1"], t["image_f+1"])
    assert max(headings) - min(headings) > math.radians(5)  # drawn per video
    for bad in (-1, 46, True, "10"):
        with pytest.raises(ConfigError, match="data.trajectory_heading_deg"):
            SyntheticDataModule(frame_ids=[0, 1], trajectory_heading_deg=bad)
