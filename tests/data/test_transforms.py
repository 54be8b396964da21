"""The albumentations pipeline keeps depth geometrically right and leaves it alone where it should."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depthlab.data.transforms import DepthAugment, EigenScale, Rotate
from depthlab.errors import ConfigError

H, W = 40, 60
K = np.array([50.0, 52.0, 29.5, 19.5])


def _sample(stereo: bool = False, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    depth = rng.uniform(1.0, 20.0, (H, W)).astype(np.float32)
    depth[rng.random((H, W)) < 0.3] = 0  # holes
    sample = {"image": rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "depth": depth,
              "intrinsics": K.copy(), "baseline_m": 0.54}
    if stereo:
        sample["image_right"] = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        sample["depth_right"] = rng.uniform(1.0, 20.0, (H, W)).astype(np.float32)
    return sample


def _run(specs: list[dict], sample: dict) -> dict:
    return DepthAugment.from_config(specs)(sample)


def test_flip_moves_tracked_pixel_and_mirrors_principal_point():
    s = _sample()
    out = _run([{"name": "HorizontalFlip", "p": 1.0}], s)
    for v, u in [(0, 0), (7, 13), (39, 59)]:
        assert out["depth"][v, W - 1 - u] == s["depth"][v, u]
    assert out["intrinsics"][2] == W - 1 - K[2] and out["intrinsics"][3] == K[3]


def test_flipping_a_stereo_pair_swaps_the_views():
    s = _sample(stereo=True)
    out = _run([{"name": "HorizontalFlip", "p": 1.0}], s)
    assert np.array_equal(out["image"], s["image_right"][:, ::-1])
    assert np.array_equal(out["image_right"], s["image"][:, ::-1])
    assert np.array_equal(out["depth"], s["depth_right"][:, ::-1])
    assert np.array_equal(out["depth_right"], s["depth"][:, ::-1])
    assert out["baseline_m"] == 0.54  # the mirrored pair is again a left/right pair with the same baseline


def test_stereo_sample_without_right_depth_gets_an_empty_one():
    s = _sample(stereo=True)
    del s["depth_right"]
    out = _run([{"name": "HorizontalFlip", "p": 1.0}], s)
    assert not out["depth"].any()  # the new left view (old right) has no ground truth
    assert np.array_equal(out["depth_right"], s["depth"][:, ::-1])


@pytest.mark.parametrize("spec", [{"name": "RandomCrop", "height": 25, "width": 31},
                                  {"name": "CenterCrop", "height": 20, "width": 20},
                                  {"name": "Crop", "x_min": 5, "y_min": 3, "x_max": 45, "y_max": 30}])
def test_crop_tracked_pixel_and_principal_point(spec):
    s = _sample()
    out = _run([spec], s)
    x0, y0 = K[2] - out["intrinsics"][2], K[3] - out["intrinsics"][3]  # the crop's origin, from the camera
    assert x0 == int(x0) and y0 == int(y0)
    x0, y0 = int(x0), int(y0)
    h, w = out["depth"].shape
    assert np.array_equal(out["depth"], s["depth"][y0:y0 + h, x0:x0 + w])
    assert np.array_equal(out["image"], s["image"][y0:y0 + h, x0:x0 + w])
    if spec["name"] == "Crop":
        assert (x0, y0, h, w) == (5, 3, 27, 40)


def test_rotation_moves_depth_by_the_rotation_and_masks_the_border():
    s = _sample()
    rotate = Rotate(limit=(17, 17), p=1.0)
    out = DepthAugment([rotate])(s)
    inverse = cv2.invertAffineTransform(rotate.params["matrix"][:2])
    checked = 0
    for y in range(H):
        for x in range(W):
            sx, sy = inverse @ np.array([x, y, 1.0])
            if min(abs(sx % 1 - 0.5), abs(sy % 1 - 0.5)) < 0.01:
                continue  # a rounding tie: either neighbour is right
            u, v = int(round(sx)), int(round(sy))
            expected = s["depth"][v, u] if 0 <= u < W and 0 <= v < H else 0.0  # outside: invalid border
            assert out["depth"][y, x] == expected, (x, y)
            checked += 1
    assert checked > 0.9 * H * W
    assert out["depth"][0, 0] == 0  # a corner comes from outside the frame at 17 degrees


def test_eigen_scale_divides_depth_by_s_at_the_tracked_pixel():
    s = _sample()
    out = DepthAugment([EigenScale(scale_range=(1.5, 1.5), p=1.0)])(s)
    assert out["depth"].shape == (60, 90) and out["image"].shape == (60, 90, 3)
    for y, x in [(0, 0), (10, 17), (59, 89), (31, 44)]:
        v, u = int((y + 0.5) / 1.5), int((x + 0.5) / 1.5)  # nearest source pixel (centres at +0.5)
        assert out["depth"][y, x] == np.float32(s["depth"][v, u] / np.float32(1.5))
    assert np.array_equal(out["depth"] == 0, cv2.resize((s["depth"] == 0).astype(np.uint8), (90, 60),
                                                         interpolation=cv2.INTER_NEAREST_EXACT).astype(bool))
    assert out["intrinsics"] == pytest.approx([75.0, 78.0, 44.5, 29.5])  # K scaled by s, centres at +0.5
    assert out["baseline_m"] == pytest.approx(0.36)  # the zoomed scene is s times smaller


def test_resize_keeps_depth_values_and_scales_the_camera():
    s = _sample()
    out = _run([{"name": "Resize", "height": 20, "width": 30}], s)
    # nearest with pixel centres at +0.5: output x samples source floor((x + 0.5) * 2) = 2x + 1
    assert np.array_equal(out["depth"], s["depth"][1::2, 1::2])
    assert out["intrinsics"] == pytest.approx([25.0, 26.0, 14.5, 9.5])


def test_geometric_transforms_never_blend_depth():
    s = _sample()
    source_values = set(np.unique(s["depth"]).tolist())
    for _ in range(5):
        out = _run([{"name": "EigenScale", "scale_range": [1.0, 1.5], "p": 1.0},
                    {"name": "Rotate", "limit": 10, "p": 1.0},
                    {"name": "Resize", "height": 33, "width": 47},
                    {"name": "RandomCrop", "height": 30, "width": 40}], s)
        scale = 0.54 / out["baseline_m"]  # EigenScale's s, recovered from the baseline
        values = np.unique(out["depth"])
        restored = {float(np.float32(np.float32(v) * np.float32(scale))) for v in values if v > 0}
        assert all(min(abs(r - t) for t in source_values) < 1e-4 for r in restored)


@pytest.mark.parametrize("spec", [
    {"name": "RandomBrightnessContrast", "brightness_limit": 0.3, "contrast_limit": 0.3, "p": 1.0},
    {"name": "RandomGamma", "gamma_limit": [70, 130], "p": 1.0},
    {"name": "HueSaturationValue", "hue_shift_limit": 20, "sat_shift_limit": 0, "val_shift_limit": 0, "p": 1.0},
    {"name": "ChannelScale", "scale_range": [0.8, 1.2], "p": 1.0},
])
def test_photometric_transforms_leave_depth_bit_identical(spec):
    s = _sample(stereo=True)
    out = _run([spec], s)
    assert out["depth"].dtype == np.float32 and out["depth"].tobytes() == s["depth"].tobytes()
    assert out["depth_right"].tobytes() == s["depth_right"].tobytes()
    assert np.array_equal(out["intrinsics"], s["intrinsics"]) and out["baseline_m"] == s["baseline_m"]
    assert not np.array_equal(out["image"], s["image"])


def test_channel_scale_is_one_draw_per_channel_in_range_shared_by_both_views():
    s = _sample(stereo=True)
    s["image"] = np.full((H, W, 3), 100, np.uint8)
    s["image_right"] = np.full((H, W, 3), 100, np.uint8)
    for _ in range(10):
        out = _run([{"name": "ChannelScale", "scale_range": [0.8, 1.2], "p": 1.0}], s)
        factors = out["image"][0, 0] / 100.0
        assert np.all((factors >= 0.8) & (factors <= 1.2))
        assert np.all(out["image"] == out["image"][0, 0]) and np.array_equal(out["image"], out["image_right"])


@pytest.mark.parametrize("spec, message", [
    ({"name": "Affine", "rotate": 5}, "not depth-aware"),
    ({"name": "Rotate", "border_mode": cv2.BORDER_REFLECT_101}, "border_mode"),
    ({"name": "Resize", "height": 5, "width": 5, "mask_interpolation": cv2.INTER_LINEAR}, "mask_interpolation"),
    ({"name": "Resize", "height": 5, "width": 5, "area_for_downscale": "image_mask"}, "area_for_downscale"),
    ({"name": "RandomCrop", "height": 5, "width": 5, "fill_mask": 3.0}, "fill_mask"),
    ({"name": "NoSuchTransform"}, "unknown transform"),
    ({"name": "RandomGamma", "gama_limit": [80, 120]}, "gama_limit"),
    ({"p": 0.5}, "'name'"),
    ({"name": "Normalize"}, "encoder"),  # networks normalise themselves
])
def test_unsafe_or_wrong_configs_are_refused(spec, message):
    with pytest.raises(ConfigError, match=message):
        DepthAugment.from_config([spec])


def test_one_of_compositions_from_yaml():
    aug = DepthAugment.from_config([{"name": "OneOf", "p": 1.0, "transforms": [
        {"name": "RandomGamma", "p": 1.0}, {"name": "ChannelScale", "p": 1.0}]}])
    s = _sample()
    assert aug(s)["depth"].tobytes() == s["depth"].tobytes()
