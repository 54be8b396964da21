"""NYU Depth v2: the labeled .mat in MATLAB v7.3 layout + splits.mat, and the BTS file lists."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from data_trees import nyu_frame

from depthlab.data import NYUDataModule
from depthlab.data.base import resolve_path
from depthlab.data.nyu import NYU_INTRINSICS, read_nyu_splits
from depthlab.data.readers import DataError, read_split_list


def _mat_module(nyu_mat, **kwargs) -> NYUDataModule:
    return NYUDataModule(format="mat", mat_path=str(nyu_mat.mat_path), splits_path=str(nyu_mat.splits_path),
                         batch_size=2, num_workers=0, **kwargs)


def test_mat_frames_follow_the_1_based_official_split(nyu_mat):
    dm = _mat_module(nyu_mat)
    test, train = dm.dataset("test"), dm.dataset("train")
    assert list(test.frames) == nyu_mat.test == [2, 4] and list(train.frames) == [1, 3]
    for i, k in enumerate(nyu_mat.test):
        image, _, raw = nyu_frame(k)
        sample = test[i]
        assert sample["image"].shape == (3, 480, 640)  # MATLAB's reversed axes undone
        assert torch.equal(sample["image"], torch.from_numpy(image).permute(2, 0, 1).float() / 255)
        assert torch.equal(sample["depth"][0], torch.from_numpy(raw))  # rawDepths by default for evaluation
        assert torch.equal(sample["valid"][0], torch.from_numpy(raw > 0))
    assert sample["intrinsics"].tolist() == pytest.approx(list(NYU_INTRINSICS))


def test_mat_depth_field_is_selectable(nyu_mat):
    dm = _mat_module(nyu_mat, eval_depth_field="depths", train_depth_field="rawDepths")
    _, filled, _ = nyu_frame(2)
    assert torch.equal(dm.dataset("test")[0]["depth"][0], torch.from_numpy(filled))
    assert dm.dataset("test")[0]["valid"].all()
    _, _, raw = nyu_frame(1)
    assert torch.equal(dm.dataset("train")[0]["depth"][0], torch.from_numpy(raw))


def test_mat_default_training_field_is_filled(nyu_mat):
    _, filled, _ = nyu_frame(3)
    assert torch.equal(_mat_module(nyu_mat).dataset("train")[1]["depth"][0], torch.from_numpy(filled))


def test_mat_handle_is_per_process_and_not_pickled(nyu_mat):
    ds = _mat_module(nyu_mat).dataset("test")
    ds[0]  # opens a handle in this process
    clone = pickle.loads(pickle.dumps(ds))  # what a spawned DataLoader worker receives
    assert clone._h5 is None
    assert torch.equal(clone[1]["depth"], ds[1]["depth"])


def test_mat_through_worker_processes(nyu_mat):
    dm = NYUDataModule(format="mat", mat_path=str(nyu_mat.mat_path), splits_path=str(nyu_mat.splits_path),
                       batch_size=2, num_workers=1, train_transforms=[{"name": "RandomCrop", "height": 416,
                                                                       "width": 544}])
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 416, 544)
    val = next(iter(dm.val_dataloader()))
    assert val["depth"].shape == (2, 1, 480, 640) and val["index"].tolist() == [0, 1]


def test_mat_frame_out_of_range_names_splits_file(nyu_mat, tmp_path):
    import scipy.io

    bad = tmp_path / "bad_splits.mat"
    scipy.io.savemat(bad, {"trainNdxs": np.array([[1]], np.uint16), "testNdxs": np.array([[2], [9]], np.uint16)})
    with pytest.raises(DataError, match=r"frame 9 out of 1\.\.4.*bad_splits\.mat:testNdxs\(2\)"):
        NYUDataModule(format="mat", mat_path=str(nyu_mat.mat_path), splits_path=str(bad)).dataset("test")


def test_mat_v7_file_is_rejected_clearly(nyu_mat, tmp_path):
    import scipy.io

    old = tmp_path / "old.mat"
    scipy.io.savemat(old, {"images": np.zeros((2, 2), np.uint8)})  # MATLAB 5 format, not HDF5
    with pytest.raises(DataError, match="old.mat.*not an HDF5"):
        NYUDataModule(format="mat", mat_path=str(old), splits_path=str(nyu_mat.splits_path)).dataset("test")


def test_list_layout_depth_in_millimetres(nyu_list):
    dm = NYUDataModule(format="list", train_list=str(nyu_list.train_list), test_list=str(nyu_list.test_list),
                       train_root=str(nyu_list.train_root), eval_root=str(nyu_list.eval_root), num_workers=0)
    test = dm.dataset("test")
    image, depth_mm = nyu_list.frames["bathroom/rgb_00003.png"]
    sample = test[0]
    assert torch.equal(sample["depth"][0], torch.from_numpy(depth_mm.astype(np.float32) * np.float32(1e-3)))
    assert torch.equal(sample["valid"][0], torch.from_numpy(depth_mm > 0))
    assert torch.equal(sample["image"], torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    fx, fy, cx, cy = sample["intrinsics"].tolist()
    assert fx == fy == pytest.approx(518.8579) and (cx, cy) == pytest.approx(NYU_INTRINSICS[2:])
    train = dm.dataset("train")  # lines start with '/': relative to train_root all the same
    assert len(train) == 2
    assert torch.equal(train[1]["depth"][0], torch.from_numpy(nyu_list.frames["office_0003/rgb_00002.png"][1]
                                                             .astype(np.float32) * np.float32(1e-3)))


def test_shipped_nyu_lists_and_splits_are_the_defaults():
    dm = NYUDataModule(mat_path="unused")
    splits = read_nyu_splits(resolve_path(dm.splits_path))
    assert len(splits["train"]) == 795 and len(splits["test"]) == 654
    assert splits["train"].min() >= 1 and splits["test"].max() <= 1449
    assert not set(splits["train"]) & set(splits["test"])
    assert len(read_split_list(resolve_path(dm.lists["test"]))) == 654
    assert len(read_split_list(resolve_path(dm.lists["train"]))) == 24231


def test_list_sample_reports_image_and_depth_problems_at_once(nyu_list):
    from depthlab.data import NYUDataModule
    from data_trees import write_png

    image, _ = nyu_list.frames["bathroom/rgb_00003.png"]
    write_png(nyu_list.eval_root / "bathroom" / "rgb_00003.png", image[:240, :320])
    depth = nyu_list.eval_root / "bathroom" / "sync_depth_00003.png"
    depth.unlink()
    dm = NYUDataModule(format="list", train_list=str(nyu_list.train_list), test_list=str(nyu_list.test_list),
                       train_root=str(nyu_list.train_root), eval_root=str(nyu_list.eval_root))
    problems = dm.dataset("test").problems(0)
    assert [(p.kind, p.path) for p in problems] == [
        ("wrong size", str(nyu_list.eval_root / "bathroom" / "rgb_00003.png")), ("missing file", str(depth))]
