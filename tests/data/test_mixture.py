"""depthlab.data.mixture: weighted draws, the exact training order, resizing, per-member loaders."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from depthlab.data import SyntheticDataModule
from depthlab.data.mixture import MixtureDataModule, MixtureDataset, MixtureSampler, resize_sample
from depthlab.data.rgbd import RGBDDataModule
from depthlab.errors import ConfigError


class _Numbers(torch.utils.data.Dataset):
    def __init__(self, n: int, size=(4, 6), tag: float = 0.0) -> None:
        self.n, self.size, self.tag = n, size, tag

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        h, w = self.size
        return {"image": torch.full((3, h, w), self.tag), "depth": torch.full((1, h, w), float(i + 1)),
                "valid": torch.ones(1, h, w, dtype=torch.bool), "extra": torch.tensor(1.0),
                "index": torch.tensor(i)}


def _mixture(lengths=(10, 30), size=None) -> MixtureDataset:
    return MixtureDataset({f"m{k}": _Numbers(n, tag=k) for k, n in enumerate(lengths)},
                          frozenset({"image", "depth", "valid", "index"}), size)


def test_draws_follow_the_weights_and_are_a_function_of_seed_and_epoch():
    data = _mixture()
    sampler = MixtureSampler(data, [1.0, 3.0], epoch_size=4000, seed=7)
    shares = sampler.shares(0)
    assert shares == pytest.approx([0.25, 0.75], abs=0.03)
    again = MixtureSampler(data, [1.0, 3.0], epoch_size=4000, seed=7)
    assert again.order(0) == sampler.order(0)
    assert sampler.order(1) != sampler.order(0)
    assert MixtureSampler(data, [1.0, 3.0], epoch_size=4000, seed=8).order(0) != sampler.order(0)


def test_inside_a_member_without_replacement_until_used_up():
    data = _mixture((5, 7))
    order = MixtureSampler(data, [1.0, 1.0], epoch_size=200, seed=0).order(0)
    first = [i for i in order if i < 5][:5]
    assert sorted(first) == [0, 1, 2, 3, 4]
    second = [i - 5 for i in order if i >= 5][:7]
    assert sorted(second) == list(range(7))


def test_zero_weight_member_never_drawn_and_epoch_size():
    sampler = MixtureSampler(_mixture(), [0.0, 1.0], epoch_size=50, seed=0)
    assert len(list(sampler)) == 50 and all(i >= 10 for i in sampler)


def test_resume_mid_epoch_continues_the_same_order():
    sampler = MixtureSampler(_mixture(), [1.0, 2.0], epoch_size=40, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    resumed = MixtureSampler(_mixture(), [1.0, 2.0], epoch_size=40, seed=3)
    resumed.resume(2, 16)
    assert list(resumed) == full[16:]


def test_dataset_cuts_keys_and_numbers_globally():
    data = _mixture()
    sample = data[12]
    assert set(sample) == {"image", "depth", "valid", "index"}
    assert sample["index"].item() == 12 and sample["depth"][0, 0, 0].item() == 3.0  # member 1, its index 2
    assert sample["image"][0, 0, 0].item() == 1.0


def test_resize_sample_by_hand():
    depth = torch.tensor([[[1.0, 2.0, 3.0, 4.0], [5.0, 0.0, 7.0, 8.0]]])  # (1, 2, 4)
    sample = {"image": torch.rand(3, 2, 4), "depth": depth, "valid": depth > 0,
              "intrinsics": torch.tensor([10.0, 20.0, 1.5, 0.5])}
    out = resize_sample(sample, (4, 8))
    # nearest-exact doubling repeats each value 2x2; validity follows the values
    assert torch.equal(out["depth"][0, ::2, ::2], depth[0])
    assert torch.equal(out["depth"][0, 1::2, 1::2], depth[0])
    assert torch.equal(out["valid"], out["depth"] > 0)
    assert out["intrinsics"].tolist() == pytest.approx([20.0, 40.0, 3.5, 1.5])  # (c + 0.5) * 2 - 0.5
    assert out["image"].shape == (3, 4, 8)


def test_config_errors_name_the_key():
    rooms = SyntheticDataModule(height=16, width=16, train_size=4, val_size=2, test_size=2, num_workers=0)
    with pytest.raises(ConfigError, match=r"data.weights.*missing: \['b'\]"):
        MixtureDataModule({"a": rooms, "b": rooms}, weights={"a": 1.0})
    with pytest.raises(ConfigError, match="data.weights"):
        MixtureDataModule({"a": rooms}, weights={"a": -1.0})
    with pytest.raises(ConfigError, match="data.members"):
        MixtureDataModule({})


@pytest.fixture
def own_folder(tmp_path: Path) -> Path:
    root = tmp_path / "own"
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    for i in range(6):
        rng = np.random.default_rng(i)
        cv2.imwrite(str(root / "rgb" / f"{i}.png"), rng.integers(0, 256, (24, 30, 3), dtype=np.uint8))
        cv2.imwrite(str(root / "depth" / f"{i}.png"), rng.integers(500, 5000, (24, 30)).astype(np.uint16))
    return root


def test_synthetic_and_own_folder_mix(own_folder):
    rooms = SyntheticDataModule(height=16, width=20, train_size=8, val_size=2, test_size=2, num_workers=0)
    mine = RGBDDataModule(train=str(own_folder), val_fraction=0.34, num_workers=0, eval_protocol="none")
    dm = MixtureDataModule({"rooms": rooms, "mine": mine}, weights={"rooms": 1.0, "mine": 1.0}, size=(16, 20),
                           batch_size=4, num_workers=0)
    assert dm.provides == frozenset({"image", "depth", "valid", "index"})
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == set(dm.provides)
    assert batch["image"].shape == (4, 3, 16, 20)
    members = Counter(dm.dataset("train").locate(i)[0] for i in batch["index"].tolist())
    assert sum(members.values()) == 4
    loaders = dm.val_dataloader()
    assert len(loaders) == 2 and len(loaders[0].dataset) == 2 and len(loaders[1].dataset) == 2
    assert dm.eval_protocols() == {"rooms": None, "mine": "none"}


def test_video_members_mix_with_their_neighbour_frames_resized_as_the_target():
    """Monocular video from two sources of different sizes: the neighbours come along, resized with the
    same filter as the target (a warp between them stays right), intrinsics rescaled once, poses kept."""
    import torch.nn.functional as F

    small = SyntheticDataModule(height=32, width=48, train_size=3, val_size=2, test_size=2, batch_size=2,
                                num_workers=0, frame_ids=[0, -1, 1])
    large = SyntheticDataModule(height=40, width=64, train_size=3, val_size=2, test_size=2, batch_size=2,
                                num_workers=0, frame_ids=[0, -1, 1], seed=3)
    mixture = MixtureDataModule(members={"small": small, "large": large}, size=[32, 48], batch_size=2, num_workers=0)
    assert {"image_f-1", "image_f+1", "pose_f-1", "pose_f+1", "intrinsics"} <= mixture.provides
    mixture.setup("fit")
    mixed = mixture.dataset("train")[3]  # the large member's first sample (members end to end)
    own = large.dataset("train")[0]
    for key in ("image", "image_f-1", "image_f+1"):
        expected = F.interpolate(own[key][None], size=(32, 48), mode="bilinear", align_corners=False, antialias=True)[0]
        torch.testing.assert_close(mixed[key], expected)
    fx, fy, cx, cy = own["intrinsics"].tolist()
    assert mixed["intrinsics"].tolist() == pytest.approx([fx * 0.75, fy * 0.8, (cx + 0.5) * 0.75 - 0.5,
                                                          (cy + 0.5) * 0.8 - 0.5])
    assert torch.equal(mixed["pose_f-1"], own["pose_f-1"]) and torch.equal(mixed["pose_f+1"], own["pose_f+1"])
    # a member without video leaves the frames out of the mixture (every batch carries only shared keys)
    still = SyntheticDataModule(height=32, width=48, train_size=3, val_size=2, test_size=2, batch_size=2, num_workers=0)
    partial = MixtureDataModule(members={"video": small, "still": still}, size=[32, 48], batch_size=2, num_workers=0)
    assert not {"image_f-1", "image_f+1"} & partial.provides
