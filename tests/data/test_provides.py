"""Every data module's ``provides`` is exactly the key set of its batches (losses are checked against it)."""

from __future__ import annotations

import pytest

from depthlab.data import KITTIDataModule, NYUDataModule, SyntheticDataModule
from depthlab.data.batch import DepthSample
from depthlab.data.loading import SplitDataModule

AUGMENT = [{"name": "RandomCrop", "height": 64, "width": 96}, {"name": "HorizontalFlip", "p": 1.0}]


def _assert_batches_match(dm: SplitDataModule, loaders: tuple[str, ...] = ("train", "test")) -> None:
    for split in loaders:
        batch = next(iter(getattr(dm, f"{split}_dataloader")()))
        name = type(dm).__name__
        assert set(batch) == dm.provides, f"{name} {split}: batch {sorted(batch)}, provides {sorted(dm.provides)}"
    assert dm.provides <= set(DepthSample.__annotations__)  # every key is documented in the sample type


def test_synthetic():
    dm = SyntheticDataModule(height=16, width=24, train_size=2, val_size=1, test_size=1, batch_size=2, num_workers=0)
    assert dm.provides == {"image", "image_right", "depth", "depth_right", "valid", "valid_right", "intrinsics",
                           "baseline_m", "index"}
    _assert_batches_match(dm)


@pytest.mark.parametrize("stereo", [False, True])
def test_kitti(kitti_tree, stereo):
    dm = KITTIDataModule(raw_root=str(kitti_tree.raw_root), gt_root=str(kitti_tree.gt_root),
                         train_list=str(kitti_tree.list_path), test_list=str(kitti_tree.list_path), stereo=stereo,
                         batch_size=1, num_workers=0, train_transforms=AUGMENT)
    mono = {"image", "depth", "valid", "intrinsics", "baseline_m", "crop_offset", "full_size", "index"}
    assert dm.provides == mono | ({"image_right", "depth_right", "valid_right"} if stereo else set())
    _assert_batches_match(dm)


def test_nyu_mat(nyu_mat):
    dm = NYUDataModule(format="mat", mat_path=str(nyu_mat.mat_path), splits_path=str(nyu_mat.splits_path),
                       batch_size=1, num_workers=0, train_transforms=AUGMENT)
    assert dm.provides == {"image", "depth", "valid", "intrinsics", "index"}
    _assert_batches_match(dm)


def test_nyu_list(nyu_list):
    dm = NYUDataModule(format="list", train_list=str(nyu_list.train_list), test_list=str(nyu_list.test_list),
                       train_root=str(nyu_list.train_root), eval_root=str(nyu_list.eval_root), batch_size=1,
                       num_workers=0)
    _assert_batches_match(dm)


def test_a_module_that_does_not_declare_its_keys_says_so():
    class Undeclared(SplitDataModule):
        pass

    with pytest.raises(NotImplementedError, match="Undeclared does not declare"):
        Undeclared().provides
