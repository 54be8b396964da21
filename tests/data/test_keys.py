"""The per-view key table drives augmentation targets, the stereo swap and tensor conversion; the
batch helpers crop and select collated batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthlab.data.base import to_tensors
from depthlab.data.keys import (
    ALBUMENTATIONS_TARGETS, SPATIAL_KEYS, STEREO_PAIRS, crop_batch, select_samples, view_keys,
)
from depthlab.data.transforms import DepthAugment, HorizontalFlip

H, W = 40, 60
K = np.array([50.0, 52.0, 29.5, 19.5])


def _maps(rng: np.random.Generator) -> np.ndarray:
    values = rng.uniform(1.0, 20.0, (H, W)).astype(np.float32)
    values[rng.random((H, W)) < 0.3] = 0  # holes
    return values


def _sample(stereo: bool, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    sample = {"image": rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "depth": _maps(rng), "hint": _maps(rng),
              "intrinsics": K.copy(), "baseline_m": 0.54}
    if stereo:
        sample |= {"image_right": rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "depth_right": _maps(rng),
                   "hint_right": _maps(rng)}
    return sample


def test_the_table_gives_these_targets_pairs_and_keys():
    assert ALBUMENTATIONS_TARGETS == {"image_right": "image", "depth": "mask", "depth_right": "mask",
                                      "hint": "mask", "hint_right": "mask"}
    assert STEREO_PAIRS == (("image", "image_right"), ("depth", "depth_right"), ("hint", "hint_right"))
    assert SPATIAL_KEYS == {"image", "image_right", "depth", "depth_right", "valid", "valid_right",
                            "hint", "hint_right", "hint_valid", "hint_valid_right"}
    assert view_keys(["image", "depth"], stereo=False) == {"image", "depth", "valid"}
    assert view_keys(["hint"], stereo=True) == {"hint", "hint_valid", "hint_right", "hint_valid_right"}
    with pytest.raises(KeyError, match="semantics"):
        view_keys(["semantics"], stereo=False)


GEOMETRY = [{"name": "EigenScale", "scale_range": [1.3, 1.3], "p": 1.0},
            {"name": "Rotate", "limit": [7, 7], "p": 1.0},
            {"name": "Resize", "height": 45, "width": 70},
            {"name": "RandomCrop", "height": 30, "width": 50},
            {"name": "HorizontalFlip", "p": 1.0},
            {"name": "RandomBrightnessContrast", "brightness_limit": 0.3, "contrast_limit": 0.3, "p": 1.0}]


def test_hint_moves_exactly_as_depth_through_every_geometric_transform():
    sample = _sample(stereo=False)
    sample["hint"] = sample["depth"].copy()  # the same map under two keys: must come out the same
    out = to_tensors(DepthAugment.from_config(GEOMETRY)(sample))
    assert out["hint"].shape == (1, 30, 50)
    assert torch.equal(out["hint"], out["depth"]) and torch.equal(out["hint_valid"], out["valid"])
    assert torch.equal(out["hint_valid"], out["hint"] > 0) and out["hint_valid"].any()
    # Moved (and divided by EigenScale's 1.3), not left in place: no output value is an input value.
    assert not np.isin(out["hint"][out["hint_valid"]].numpy(), sample["hint"][sample["hint"] > 0]).any()


def test_stereo_hint_is_swapped_like_depth():
    sample = _sample(stereo=True)
    sample["hint"], sample["hint_right"] = sample["depth"].copy(), sample["depth_right"].copy()
    out = to_tensors(DepthAugment.from_config(GEOMETRY)(sample))
    for left, right in [("hint", "depth"), ("hint_right", "depth_right"), ("hint_valid", "valid"),
                        ("hint_valid_right", "valid_right")]:
        assert torch.equal(out[left], out[right]), left


def test_flip_swaps_every_per_view_map():
    sample = _sample(stereo=True)
    out = DepthAugment([HorizontalFlip(p=1.0)])(sample)
    for left, right in STEREO_PAIRS:
        assert np.array_equal(out[left], sample[right][:, ::-1]), left
        assert np.array_equal(out[right], sample[left][:, ::-1]), right


def test_stereo_sample_with_a_one_sided_hint_gets_an_empty_other_view():
    sample = _sample(stereo=True)
    del sample["hint_right"]
    out = to_tensors(DepthAugment([HorizontalFlip(p=1.0)])(sample))
    assert not out["hint_valid"].any()  # the new left view (old right) has no hint
    assert torch.equal(out["hint_right"][0], torch.from_numpy(sample["hint"][:, ::-1].copy()))
    with pytest.raises(ValueError, match="hint needs hint_right"):
        DepthAugment([HorizontalFlip(p=1.0)]).compose(**sample)  # the bare pipeline, without completion


def test_to_tensors_gives_each_depth_like_map_its_own_validity():
    sample = _sample(stereo=True)
    sample["hint"][0, :3] = [np.nan, -1.0, np.inf]
    out = to_tensors(sample)
    assert set(out) == SPATIAL_KEYS | {"intrinsics", "baseline_m"}
    assert out["hint"][0, 0, :3].tolist() == [0.0, 0.0, 0.0]
    for key, valid in [("hint", "hint_valid"), ("hint_right", "hint_valid_right"), ("depth", "valid")]:
        assert out[key].shape == (1, H, W) and out[key].dtype == torch.float32
        assert torch.equal(out[valid], out[key] > 0), key
    assert not torch.equal(out["hint_valid"], out["valid"])  # its own holes, not depth's


# -- batch helpers ------------------------------------------------------------------------------------
def _batch() -> dict:
    g = torch.Generator().manual_seed(0)
    depth = torch.rand(2, 1, 6, 8, generator=g)
    return {
        "image": torch.rand(2, 3, 6, 8, generator=g), "image_right": torch.rand(2, 3, 6, 8, generator=g),
        "depth": depth, "valid": depth > 0.5, "hint": depth * 2, "hint_valid": depth > 0.2,
        "intrinsics": torch.tensor([[10.0, 11.0, 3.5, 2.5], [20.0, 21.0, 4.0, 3.0]]),
        "baseline_m": torch.tensor([0.54, 0.25]), "crop_offset": torch.tensor([[0, 0], [23, 13]]),
        "full_size": torch.tensor([[6, 8], [375, 1242]]), "index": torch.tensor([7, 9]), "names": ["a", "b"],
    }


def test_crop_batch_cuts_every_map_and_moves_the_camera():
    batch = _batch()
    out = crop_batch(batch, top=1, left=2, height=3, width=4)
    for key in ("image", "image_right", "depth", "valid", "hint", "hint_valid"):
        assert torch.equal(out[key], batch[key][:, :, 1:4, 2:6]), key
    assert out["intrinsics"].tolist() == [[10.0, 11.0, 1.5, 1.5], [20.0, 21.0, 2.0, 2.0]]
    assert out["crop_offset"].tolist() == [[1, 2], [24, 15]]  # still the window's place in the frame
    for key in ("baseline_m", "full_size", "index", "names"):
        assert out[key] is batch[key]
    assert batch["image"].shape == (2, 3, 6, 8) and batch["intrinsics"][0, 2] == 3.5  # input untouched


def test_crop_batch_agrees_with_the_crop_augmentation():
    sample = _sample(stereo=True)
    augmented = to_tensors(DepthAugment.from_config([{"name": "Crop", "x_min": 5, "y_min": 3, "x_max": 45,
                                                      "y_max": 30}])(sample))
    cropped = crop_batch(to_tensors(sample), top=3, left=5, height=27, width=40)
    assert set(augmented) == set(cropped)
    for key in augmented:
        assert torch.allclose(augmented[key].double(), cropped[key].double()), key


@pytest.mark.parametrize("window", [(0, 0, 7, 8), (-1, 0, 3, 3), (0, 6, 3, 3), (0, 0, 0, 3)])
def test_crop_batch_refuses_a_window_outside_the_maps(window):
    with pytest.raises(ValueError, match="not inside the 6x8 maps"):
        crop_batch(_batch(), *window)


def test_select_samples_by_mask_or_positions():
    batch = _batch()
    by_mask = select_samples(batch, torch.tensor([False, True]))
    by_position = select_samples(batch, [1])
    by_int = select_samples(batch, 1)
    for out in (by_mask, by_position, by_int):
        assert out["index"].tolist() == [9] and out["intrinsics"].shape == (1, 4)
        assert torch.equal(out["depth"], batch["depth"][1:]) and out["names"] is batch["names"]
    assert select_samples(batch, [])["image"].shape == (0, 3, 6, 8)
    reordered = select_samples(batch, torch.tensor([1, 0]))
    assert reordered["baseline_m"].tolist() == pytest.approx([0.25, 0.54])
    with pytest.raises(ValueError, match="mask has 3 entries"):
        select_samples(batch, [True, False, True])
    with pytest.raises(ValueError, match="bool mask or integer"):
        select_samples(batch, torch.tensor([0.5]))
