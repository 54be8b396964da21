"""Depth Hints through the data modules: loaded before the KB crop and the augmentation, so they move
exactly as depth; a missing or malformed hint file names the file and the list line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from data_trees import build_kitti

from depthlab.cli import main as cli_main
from depthlab.data import DataError, KITTIDataModule, SyntheticDataModule
from depthlab.data.batch import DepthSample
from depthlab.data.kitti import KB_CROP, kb_crop_box
from depthlab.errors import ConfigError
from depthlab.hints.store import save_hint


def _hint_path(root, frame, camera):
    return root / frame["date"] / frame["drive"] / camera / f"{frame['frame']:010d}.npy"


def _depth_as_hints(tree, root) -> None:
    """Store each view's ground truth as its hint: whatever moves depth must move the hint the same way."""
    for frame in tree.frames:
        save_hint(_hint_path(root, frame, "image_02"), frame["depth_raw"].astype(np.float32) / 256)
        save_hint(_hint_path(root, frame, "image_03"), frame["depth_right_raw"].astype(np.float32) / 256)


def _module(tree, root, **kwargs) -> KITTIDataModule:
    args = dict(raw_root=str(tree.raw_root), gt_root=str(tree.gt_root), train_list=str(tree.list_path),
                val_list=str(tree.list_path), test_list=str(tree.list_path), batch_size=2, num_workers=0,
                eval_kb_crop=True, stereo=True, hints_root=None if root is None else str(root))
    return KITTIDataModule(**(args | kwargs))


@pytest.fixture
def kitti_with_hints(tmp_path):
    tree = build_kitti(tmp_path)
    root = tmp_path / "hints"
    _depth_as_hints(tree, root)
    return tree, root


def test_hints_are_cut_by_the_kb_crop_like_depth(kitti_with_hints):
    tree, root = kitti_with_hints
    sample = _module(tree, root).dataset("test")[3]  # the 370x1226 drive
    top, left = kb_crop_box(*tree.frames[3]["size"])
    stored = np.load(_hint_path(root, tree.frames[3], "image_02"))[0]
    assert sample["hint"].shape == (1, *KB_CROP)
    assert torch.equal(sample["hint"][0], torch.from_numpy(stored[top:top + KB_CROP[0], left:left + KB_CROP[1]]))
    assert torch.equal(sample["hint"], sample["depth"]) and torch.equal(sample["hint_right"], sample["depth_right"])


def test_hints_move_exactly_as_depth_and_a_flip_swaps_the_views(kitti_with_hints):
    tree, root = kitti_with_hints
    augment = [{"name": "EigenScale", "scale_range": [1.2, 1.2], "p": 1.0},
               {"name": "RandomCrop", "height": 256, "width": 640},
               {"name": "HorizontalFlip", "p": 1.0}]
    dm = _module(tree, root, train_transforms=augment)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == dm.provides and dm.provides <= set(DepthSample.__annotations__)
    assert batch["hint"].shape == (2, 1, 256, 640)
    for hint, depth in [("hint", "depth"), ("hint_right", "depth_right"), ("hint_valid", "valid"),
                        ("hint_valid_right", "valid_right")]:
        assert torch.equal(batch[hint], batch[depth]), hint
    # The flip alone, on a fixed window: the new left hint is the mirrored right one.
    sample = _module(tree, root, train_transforms=[{"name": "HorizontalFlip", "p": 1.0}]).dataset("train")[0]
    top, left = kb_crop_box(375, 1242)
    right = np.load(_hint_path(root, tree.frames[0], "image_03"))[0][top:top + 352, left:left + 1216]
    assert torch.equal(sample["hint"][0], torch.from_numpy(right[:, ::-1].copy()))


def test_provides_lists_the_hint_keys_only_when_configured(kitti_with_hints):
    tree, root = kitti_with_hints
    stereo = {"hint", "hint_valid", "hint_right", "hint_valid_right"}
    assert _module(tree, root).provides >= stereo
    assert _module(tree, root, stereo=False).provides & stereo == {"hint", "hint_valid"}
    assert not _module(tree, None).provides & stereo
    mono = _module(tree, root, stereo=False).dataset("test")[0]
    assert "hint" in mono and "hint_right" not in mono


def test_a_missing_hint_names_the_file_and_the_list_line(kitti_with_hints, tmp_path, capsys):
    tree, root = kitti_with_hints
    missing = _hint_path(root, tree.frames[2], "image_03")  # list line 4 (line 3 is a None line)
    missing.unlink()
    with pytest.raises(DataError, match=rf"{missing}: missing file: .*\(listed at {tree.list_path}:4\)"):
        _module(tree, root).dataset("test")[2]
    config = {"model": {"net": "unet"}, "data": {"class_path": "depthlab.data.KITTIDataModule", "init_args": {
        "raw_root": str(tree.raw_root), "gt_root": str(tree.gt_root), "train_list": str(tree.list_path),
        "val_list": str(tree.list_path), "test_list": str(tree.list_path), "stereo": True,
        "hints_root": str(root), "num_workers": 0}}}
    path = tmp_path / "kitti.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli_main(["data", "check", "--config", str(path), "--split", "test"]) == 1
    out = capsys.readouterr().out
    assert "  missing file: 1\n" in out and str(missing) in out and f"{tree.list_path}:4" in out


def test_a_hint_of_another_size_names_the_file(kitti_with_hints):
    tree, root = kitti_with_hints
    frame = tree.frames[0]
    cropped = _hint_path(root, frame, "image_02")
    save_hint(cropped, np.ones(KB_CROP, np.float32))  # a crop stored instead of the full frame
    with pytest.raises(DataError, match=rf"{cropped}: wrong size: hint is \(1, 352, 1216\), its image needs "
                                        rf"\(1, 375, 1242\) \(listed at {tree.list_path}:1\)"):
        _module(tree, root).dataset("test")[0]


def test_a_missing_hints_folder_is_a_config_error(kitti_with_hints, tmp_path):
    tree, _ = kitti_with_hints
    with pytest.raises(ConfigError, match="data.hints_root: folder .*nowhere does not exist"):
        _module(tree, tmp_path / "nowhere").dataset("test")


# -- synthetic -----------------------------------------------------------------------------------------
SMALL = dict(height=16, width=24, train_size=2, val_size=1, test_size=1, batch_size=2, num_workers=0)


def test_synthetic_missing_hint_names_the_file_and_sample(tmp_path):
    save_hint(tmp_path / "val" / "image_02" / "000000.npy", np.ones((16, 24)))
    dataset = SyntheticDataModule(**SMALL, hints_root=str(tmp_path)).dataset("val")
    missing = tmp_path / "val" / "image_03" / "000000.npy"
    with pytest.raises(DataError, match=rf"{missing}: missing file: .*listed at synthetic val sample 0 \(seed 0\)"):
        dataset[0]


def test_synthetic_hints_options(tmp_path):
    assert SyntheticDataModule(**SMALL, hints_on_the_fly=True).provides == SyntheticDataModule(**SMALL).provides | {
        "hint", "hint_valid", "hint_right", "hint_valid_right"}
    with pytest.raises(ConfigError, match="hints_root and hints_on_the_fly exclude each other"):
        SyntheticDataModule(**SMALL, hints_root=str(tmp_path), hints_on_the_fly=True)
    with pytest.raises(ConfigError, match="data.hints_root: folder .*absent does not exist"):
        SyntheticDataModule(**SMALL, hints_root=str(tmp_path / "absent")).dataset("train")
