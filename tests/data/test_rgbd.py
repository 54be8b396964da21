"""depthlab.data.rgbd: users' own RGB-D folders and manifests, read back value by value."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from depthlab.errors import DataError
from depthlab.data.rgbd import RGBDDataModule, read_depth_file
from depthlab.errors import ConfigError

H, W = 12, 16


def _rgb(path: Path, seed: int, size=(H, W)) -> np.ndarray:
    image = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image[..., ::-1])  # stored BGR, read back RGB
    return image


def _png16(path: Path, raw: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), raw.astype(np.uint16))


def _raw_mm(seed: int) -> np.ndarray:
    raw = np.random.default_rng(seed).integers(500, 9000, (H, W)).astype(np.uint16)
    raw[0, 0] = 0  # no measurement
    return raw


@pytest.fixture
def own_folder(tmp_path: Path) -> Path:
    root = tmp_path / "own"
    for i in range(4):
        _rgb(root / "rgb" / f"{i:04d}.png", i)
        _png16(root / "depth" / f"{i:04d}.png", _raw_mm(i))
    return root


def test_png_millimetres_and_kitti_scale_exact(tmp_path):
    raw = _raw_mm(0)
    _png16(tmp_path / "d.png", raw)
    mm = read_depth_file(tmp_path / "d.png", 1e-3, "here")
    assert mm.dtype == np.float32
    assert mm[3, 5] == np.float32(raw[3, 5] * 1e-3) and mm[0, 0] == 0
    kitti = read_depth_file(tmp_path / "d.png", 1 / 256, "here")
    assert kitti[7, 2] == np.float32(raw[7, 2] / 256)


def test_float_tiff_and_npy_in_metres_with_invalid_values(tmp_path):
    depth = np.random.default_rng(1).uniform(0.5, 20, (H, W)).astype(np.float32)
    depth[1, 1], depth[2, 2], depth[3, 3] = np.nan, np.inf, -1.0
    depth[4, 4] = 65.0  # the data set's "no measurement" code below
    assert cv2.imwrite(str(tmp_path / "d.tiff"), depth)
    np.save(tmp_path / "d.npy", depth[None])  # (1, H, W) is accepted too
    for name in ("d.tiff", "d.npy"):
        got = read_depth_file(tmp_path / name, 1e-3, "here", invalid_value=65.0)  # depth_scale is for PNGs only
        assert got[5, 6] == depth[5, 6], name
        assert got[1, 1] == got[2, 2] == got[3, 3] == got[4, 4] == 0, name


def test_folder_samples_exact(own_folder):
    dm = RGBDDataModule(train=str(own_folder), val=str(own_folder), intrinsics=(20.0, 21.0, 7.5, 5.5), num_workers=0)
    dm.setup("fit")
    sample = dm.dataset("train")[2]
    raw = _raw_mm(2)
    assert sample["depth"].shape == (1, H, W)
    assert sample["depth"][0, 4, 9].item() == pytest.approx(raw[4, 9] * 1e-3, rel=1e-7)
    assert not sample["valid"][0, 0, 0] and sample["valid"][0, 4, 9]
    image = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    assert torch.equal(sample["image"], torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    assert sample["intrinsics"].tolist() == [20.0, 21.0, 7.5, 5.5]
    assert dm.provides == frozenset(sample) | {"index"}


def test_intrinsics_follow_resize_and_crop(own_folder):
    dm = RGBDDataModule(train=str(own_folder), val=str(own_folder), intrinsics=(20.0, 21.0, 7.5, 5.5), size=(6, 8),
                        train_transforms=[{"name": "Crop", "x_min": 2, "y_min": 1, "x_max": 6, "y_max": 5}],
                        num_workers=0)
    sample = dm.dataset("train")[0]
    assert sample["image"].shape == (3, 4, 4)
    fx, fy, cx, cy = sample["intrinsics"].tolist()
    # resize by 1/2 with pixel centres at integers: c' = (c + 0.5) / 2 - 0.5, then the crop moves it
    assert fx == pytest.approx(10.0) and fy == pytest.approx(10.5)
    assert cx == pytest.approx((7.5 + 0.5) / 2 - 0.5 - 2) and cy == pytest.approx((5.5 + 0.5) / 2 - 0.5 - 1)
    # validation resized too, not cropped
    assert dm.dataset("val")[0]["image"].shape == (3, 6, 8)


def test_manifest_csv_and_jsonl_with_stereo_row(tmp_path):
    _rgb(tmp_path / "l.png", 3)
    right = _rgb(tmp_path / "r.png", 4)
    raw = _raw_mm(3)
    _png16(tmp_path / "d.png", raw)
    (tmp_path / "m.csv").write_text("image,depth,right,fx,fy,cx,cy,baseline_m,depth_scale\n"
                                    "l.png,d.png,r.png,30,30,8,6,0.12,0.00390625\n")
    with (tmp_path / "m.jsonl").open("w") as f:
        f.write(json.dumps({"image": "l.png", "depth": "d.png", "right": "r.png", "fx": 30, "fy": 30, "cx": 8,
                            "cy": 6, "baseline_m": 0.12, "depth_scale": 1 / 256}) + "\n")
    for name in ("m.csv", "m.jsonl"):
        dm = RGBDDataModule(train=str(tmp_path / name), val=str(tmp_path / name), num_workers=0)
        sample = dm.dataset("train")[0]
        assert sample["depth"][0, 6, 3].item() == pytest.approx(raw[6, 3] / 256, rel=1e-7), name
        assert torch.equal(sample["image_right"], torch.from_numpy(right).permute(2, 0, 1).float() / 255), name
        assert sample["baseline_m"].item() == pytest.approx(0.12)
        assert sample["intrinsics"].tolist() == [30, 30, 8, 6]
        assert {"image_right", "baseline_m", "intrinsics"} <= dm.provides


def test_val_fraction_is_deterministic(own_folder):
    a = RGBDDataModule(train=str(own_folder), val_fraction=0.25, num_workers=0)
    b = RGBDDataModule(train=str(own_folder), val_fraction=0.25, num_workers=0)
    assert [r.image for r in a.rows("val")] == [r.image for r in b.rows("val")]
    assert len(a.rows("val")) == 1 and len(a.rows("train")) == 3
    assert not {r.image for r in a.rows("val")} & {r.image for r in a.rows("train")}


def _error(dm: RGBDDataModule, split="train") -> str:
    with pytest.raises((ConfigError, DataError)) as info:
        dm.dataset(split)[0]
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_inputs_are_one_line_naming_file_and_row(tmp_path, own_folder):
    (own_folder / "depth" / "0001.png").unlink()
    message = _error(RGBDDataModule(train=str(own_folder), num_workers=0))
    assert "0001" in message and "no depth file" in message

    other = tmp_path / "other"
    _rgb(other / "rgb" / "a.png", 0)
    _png16(other / "depth" / "a.png", np.ones((H + 1, W), np.uint16))
    message = _error(RGBDDataModule(train=str(other), num_workers=0))
    assert str(other / "depth" / "a.png") in message and "13x16" in message

    cv2.imwrite(str(other / "depth" / "a.png"), np.ones((H, W), np.uint8))
    message = _error(RGBDDataModule(train=str(other), num_workers=0))
    assert "16-bit" in message and "uint8" in message

    (tmp_path / "noimage.csv").write_text("rgb,depth\na.png,a.png\n")
    message = _error(RGBDDataModule(train=str(tmp_path / "noimage.csv"), num_workers=0))
    assert "noimage.csv:1" in message and "'image' column" in message

    (tmp_path / "badfx.csv").write_text("image,depth,fx,fy,cx,cy\nother/rgb/a.png,x.png,1,1,1,1\n"
                                        "other/rgb/a.png,x.png,abc,1,1,1\n")
    message = _error(RGBDDataModule(train=str(tmp_path / "badfx.csv"), num_workers=0))
    assert "badfx.csv:3" in message and "fx" in message and "'abc'" in message

    (tmp_path / "empty" / "rgb").mkdir(parents=True)
    (tmp_path / "empty" / "depth").mkdir()
    message = _error(RGBDDataModule(train=str(tmp_path / "empty"), num_workers=0))
    assert "no .png/.jpg" in message and "empty" in message


def test_mixed_sizes_train_refused_eval_grouped(tmp_path):
    root = tmp_path / "mixed"
    for i, size in enumerate([(H, W), (H, W), (8, 10)]):
        _rgb(root / "rgb" / f"{i}.png", i, size)
        _png16(root / "depth" / f"{i}.png", np.full(size, 1000, np.uint16))
    dm = RGBDDataModule(train=str(root), val=str(root), batch_size=2, num_workers=0)
    with pytest.raises(ConfigError, match="different sizes.*data.size"):
        dm.train_dataloader()
    shapes = [tuple(b["image"].shape[-2:]) for b in dm.val_dataloader()]
    assert sorted(shapes) == [(8, 10), (H, W)]
    assert [b["image"].shape[0] for b in dm.val_dataloader()] == [2, 1]


def test_stats_show_sizes_valid_share_percentiles_and_camera(own_folder):
    import io

    from depthlab.data.stats import stats

    dm = RGBDDataModule(train=str(own_folder), val=str(own_folder), intrinsics=(20.0, 21.0, 7.5, 5.5), num_workers=0)
    out = io.StringIO()
    found = stats(dm, ["train"], out=out)[0]
    values = np.concatenate([_raw_mm(i).ravel() for i in range(4)]).astype(np.float64)
    valid = values[values > 0] * 1e-3
    assert found.samples == 4 and found.sizes == {(H, W): 4}
    assert found.valid_fraction == pytest.approx(valid.size / values.size)
    assert found.percentiles == pytest.approx(tuple(np.percentile(valid, [1, 50, 99])), rel=1e-5)
    assert found.intrinsics == {(20.0, 21.0, 7.5, 5.5): 4}
    text = out.getvalue()
    assert "train: 4 samples" in text and f"{H}x{W} (4)" in text and "p50" in text

    # the wrong unit is visible at once: millimetres read as metres
    wrong = stats(RGBDDataModule(train=str(own_folder), val=str(own_folder), depth_scale=1.0, num_workers=0),
                  ["train"], out=io.StringIO())[0]
    assert wrong.percentiles[1] > 400


def test_a_stereo_manifest_without_depth_provides_no_depth(tmp_path):
    _rgb(tmp_path / "l.png", 1)
    _rgb(tmp_path / "r.png", 2)
    (tmp_path / "m.csv").write_text("image,right,fx,fy,cx,cy,baseline_m\nl.png,r.png,30,30,8,6,0.1\n")
    dm = RGBDDataModule(train=str(tmp_path / "m.csv"), val=str(tmp_path / "m.csv"), num_workers=0)
    sample = dm.dataset("train")[0]
    assert dm.provides == frozenset(sample) == {"image", "image_right", "intrinsics", "baseline_m", "index", "name"}


def test_stereo_rows_get_depth_hints_from_hints_precompute(tmp_path):
    from depthlab.hints.precompute import precompute

    root, d, fx, baseline = tmp_path / "stereo", 6, 50.0, 0.2
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8), (160, 96), interpolation=cv2.INTER_LINEAR)
    for i in range(2):
        left = np.roll(texture, 3 * i, axis=1)
        right = np.roll(left, -d, axis=1)  # left(x) = right(x - d): every pixel at disparity d
        for folder, image in (("rgb", left), ("right", right)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / folder / f"{i}.png"), image)
        _png16(root / "depth" / f"{i}.png", np.full((96, 160), round(fx * baseline / d * 1000), np.uint16))
    common = dict(train=str(root), val=str(root), intrinsics=(fx, fx, 79.5, 47.5), baseline_m=baseline, num_workers=0)
    hints = tmp_path / "hints"
    summary = precompute(RGBDDataModule(**common), hints, workers=1, progress=False, out=io.StringIO())
    assert summary.computed == 2 and not summary.failures
    assert sorted(p.relative_to(hints).as_posix() for p in hints.glob("*.npy")) == ["0.npy", "0_right.npy", "1.npy",
                                                                                  "1_right.npy"]
    dm = RGBDDataModule(**common, hints_root=str(hints))
    sample = dm.dataset("train")[1]
    assert dm.provides == frozenset(sample)
    assert {"hint", "hint_valid", "hint_right", "hint_valid_right"} <= set(sample)
    hint = sample["hint"][sample["hint_valid"]]
    assert hint.numel() > 0.3 * 96 * 160 and hint.median().item() == pytest.approx(fx * baseline / d, rel=0.05)
    with pytest.raises(ConfigError, match="baseline_m"):
        RGBDDataModule(train=str(root), val=str(root), intrinsics=(fx, fx, 79.5, 47.5), num_workers=0).hint_jobs("train")
