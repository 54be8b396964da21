"""Data modules load only what the objective and the evaluation read (``SplitDataModule.require``,
called from ``DepthModule.setup``): the keys that do come are the same tensors as without the
restriction, and the work of the others is not done."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from lightning.pytorch.trainer.states import TrainerFn

import depthlab.data.synthetic as synthetic
from depthlab.data import MixtureDataModule, SyntheticDataModule
from depthlab.data.rgbd import RGBDDataModule
from depthlab.errors import ConfigError, DataError
from depthlab.module import DepthModule

TINY_NET = {"name": "unet", "encoder": "test_resnet", "pretrained": False, "decoder_channels": [8, 8, 8, 8]}
RIGHT_MAPS = {"image_right", "depth_right", "valid_right"}


def _synthetic(**kwargs) -> SyntheticDataModule:
    options = dict(height=16, width=24, train_size=4, val_size=2, test_size=2, batch_size=2, num_workers=0)
    return SyntheticDataModule(**(options | kwargs))


def _same(restricted: dict, full: dict) -> None:
    for key, value in restricted.items():
        assert torch.equal(value, full[key]), key


def test_the_procedural_data_ray_cast_no_right_camera_that_nobody_reads(monkeypatch):
    casts = []
    render = synthetic.render_view
    monkeypatch.setattr(synthetic, "render_view", lambda *a, **k: casts.append(a[2]) or render(*a, **k))
    dm = _synthetic(gt_density=0.5)  # sparse ground truth: the right view's draws follow the left's
    full, restricted = dm.dataset("train"), dm.dataset("train")
    restricted.required = frozenset({"image", "depth", "valid"})
    for index in (0, 3):
        casts.clear()
        a = full[index]
        assert casts == [0.0, dm.scene.baseline_m]  # both cameras
        casts.clear()
        b = restricted[index]
        assert casts == [0.0]  # the left camera only
        assert set(b) == set(a) - RIGHT_MAPS
        _same(b, a)


def test_a_stereo_flip_still_reads_the_right_view_that_becomes_the_left():
    dm = _synthetic(train_transforms=[{"name": "HorizontalFlip", "p": 1.0}])
    full, restricted = dm.dataset("train"), dm.dataset("train")
    restricted.required = frozenset({"image", "depth"})
    assert restricted.wants("image_right") and not restricted.wants("hint")
    a, b = full[1], restricted[1]
    assert set(b) == set(a) - RIGHT_MAPS
    _same(b, a)
    unflipped = _synthetic().dataset("train")[1]  # the flipped left view is the mirrored right one
    assert torch.equal(b["image"], unflipped["image_right"].flip(-1))


def _stereo_manifest(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("l.png", "r.png"):
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "d.png"), rng.integers(500, 9000, (6, 8)).astype(np.uint16))
    (tmp_path / "m.csv").write_text("image,depth,right,fx,fy,cx,cy,baseline_m\nl.png,d.png,r.png,9,9,4,3,0.1\n")
    return tmp_path / "m.csv"


def test_own_stereo_data_do_not_read_the_right_file_nobody_reads(tmp_path):
    manifest = _stereo_manifest(tmp_path)
    dm = RGBDDataModule(train=str(manifest), val=str(manifest), num_workers=0)
    full = dm.dataset("train")[0]
    (tmp_path / "r.png").unlink()  # a read of the right image would now fail
    dm.require({"image", "depth"})
    restricted = dm.restrict(dm.dataset("train"), "train")[0]
    assert set(restricted) == set(full) - RIGHT_MAPS  # the right depth: the zeros of a stereo row without one
    _same({k: v for k, v in restricted.items() if k != "name"}, full)
    dm.require(None)  # lifted: everything is read again
    with pytest.raises(DataError, match="r.png"):
        dm.restrict(dm.dataset("train"), "train")[0]


def _set_up(module: DepthModule, stage, datamodule) -> None:
    module.trainer = SimpleNamespace(datamodule=datamodule)
    module.setup(stage)


def test_the_module_tells_the_data_what_its_objective_and_protocol_read():
    dm = _synthetic()
    _set_up(DepthModule(net=TINY_NET, loss="silog"), TrainerFn.FITTING, dm)
    assert dm.required_keys("train") == {"image", "depth"}
    assert dm.required_keys("val") == {"image", "depth", "valid"}
    assert dm.required_keys("test") is None  # fit does not touch the test split
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == dm.provides - RIGHT_MAPS
    _set_up(DepthModule(net=TINY_NET, loss="photometric"), TrainerFn.FITTING, dm)  # a stereo objective
    assert {"image_right", "baseline_m"} <= set(next(iter(dm.train_dataloader())))
    _set_up(DepthModule(net=TINY_NET, loss="silog"), TrainerFn.PREDICTING, dm)
    assert dm.required_keys("test") is None  # prediction writers read what they like


def test_a_key_the_data_cannot_provide_is_still_refused_in_one_line():
    monocular = _synthetic(frame_ids=[0, -1])  # a monocular video: no right view at all
    with pytest.raises(ConfigError, match=r"term 'photometric' requires batch key 'baseline_m', which data module "
                                          r"SyntheticDataModule does not provide"):
        _set_up(DepthModule(net=TINY_NET, loss="photometric"), TrainerFn.FITTING, monocular)


def test_a_mixture_passes_the_keys_to_its_members():
    dm = MixtureDataModule({"a": _synthetic(), "b": _synthetic(seed=1)}, batch_size=2, num_workers=0)
    dm.require({"image", "depth"}, "train")
    assert all(m.required_keys("train") == {"image", "depth"} for m in dm.members.values())
    sample = dm.restrict(dm.dataset("train"), "train")[5]  # member b's
    assert set(sample) == {"image", "depth", "valid", "intrinsics", "baseline_m", "index"}


@pytest.mark.slow  # a DataLoader worker process
def test_cache_eval_renders_each_validation_scene_once_in_the_persistent_worker(monkeypatch, tmp_path):
    log = tmp_path / "renders.txt"  # written by the worker process
    render = synthetic.render_arrays
    monkeypatch.setattr(synthetic, "render_arrays",
                        lambda *a, **k: log.open("a").write(f"{a[2]} {a[3]}\n") and render(*a, **k))
    dm = _synthetic(cache="eval", num_workers=1)
    val, train = dm.val_dataloader(), dm.train_dataloader()
    epochs = [[b["image"] for b in val] for _ in range(3)]  # three validations, one worker for all
    list(train), list(train)
    renders = log.read_text().splitlines()
    assert renders.count("val 0") == 1 and renders.count("val 1") == 1
    assert renders.count("train 0") == 2  # training samples are not kept
    assert all(torch.equal(a, b) for a, b in zip(epochs[0], epochs[2]))
    dm._shutdown_workers()
    with pytest.raises(ConfigError, match="data.cache: expected true, false or eval"):
        _synthetic(cache="val")
