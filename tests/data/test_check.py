"""Bad data gives errors naming the file and the split-list line; ``depthlab data check`` counts them all."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depthlab.data.workers import shutdown_workers
import yaml
from data_trees import build_kitti, write_png

from depthlab.cli import main as cli_main
from depthlab.data import DataError, KITTIDataModule, NYUDataModule


def _kitti_module(tree, **kwargs) -> KITTIDataModule:
    args = dict(raw_root=str(tree.raw_root), gt_root=str(tree.gt_root), train_list=str(tree.list_path),
                val_list=str(tree.list_path), test_list=str(tree.list_path), num_workers=0)
    return KITTIDataModule(**(args | kwargs))


def _break(tree) -> dict[str, tuple[str, str]]:
    """Four broken samples; returns kind -> (file, 'list:lineno') that the error must name."""
    f = tree.frames
    image0 = tree.raw_root / f[0]["date"] / f[0]["drive"] / "image_02" / "data" / "0000000005.png"
    image0.unlink()
    image1 = tree.raw_root / f[1]["date"] / f[1]["drive"] / "image_02" / "data" / "0000000006.png"
    image1.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    depth2 = tree.gt_root / "val" / f[2]["drive"] / "proj_depth" / "groundtruth" / "image_02" / "0000000069.png"
    write_png(depth2, (f[2]["depth_raw"] // 256).astype(np.uint8))  # 8-bit: wrong dtype
    depth3 = tree.gt_root / "train" / f[3]["drive"] / "proj_depth" / "groundtruth" / "image_02" / "0000000010.png"
    write_png(depth3, f[3]["depth_raw"][:-10])  # 360 rows for a 370-row image
    lst = tree.list_path
    # List lines: 1 drive_0001/5, 2 drive_0001/6, 3 None, 4 drive_0002/69, 5 drive_0016/10.
    return {"missing file": (str(image0), f"{lst}:1"), "unreadable file": (str(image1), f"{lst}:2"),
            "wrong dtype": (str(depth2), f"{lst}:4"), "wrong size": (str(depth3), f"{lst}:5")}


def test_each_bad_file_error_names_file_and_list_line(tmp_path):
    tree = build_kitti(tmp_path)
    broken = _break(tree)
    ds = _kitti_module(tree).dataset("test")
    for index, (kind, (path, line)) in enumerate(broken.items()):
        with pytest.raises(DataError) as info:
            ds[index]
        message = str(info.value)
        assert path in message and f"(listed at {line})" in message and kind in message, message


def test_error_from_a_worker_process_still_names_file_and_line(tmp_path):
    tree = build_kitti(tmp_path)
    path, line = _break(tree)["missing file"]
    loader = _kitti_module(tree, num_workers=1, eval_batch_size=1).val_dataloader()
    try:
        with pytest.raises(DataError) as info:
            next(iter(loader))
    finally:
        shutdown_workers(loader)  # not left to the garbage collector in a later test
    assert path in str(info.value) and line in str(info.value)


def test_one_sample_reports_all_its_problems(tmp_path):
    tree = build_kitti(tmp_path)
    f = tree.frames[0]
    (tree.raw_root / f["date"] / f["drive"] / "image_02" / "data" / "0000000005.png").unlink()
    (tree.gt_root / "train" / f["drive"] / "proj_depth" / "groundtruth" / "image_02" / "0000000005.png").unlink()
    (tree.raw_root / f["date"] / "calib_cam_to_cam.txt").write_text("P_rect_02: 1 2 3\n")
    problems = _kitti_module(tree).dataset("test").problems(0)
    assert sorted(p.kind for p in problems) == ["bad calibration", "missing file", "missing file"]


def test_nyu_list_wrong_image_size_and_missing_depth(nyu_list):
    image, _ = nyu_list.frames["bathroom/rgb_00003.png"]
    write_png(nyu_list.eval_root / "bathroom" / "rgb_00003.png", image[:240, :320])
    (nyu_list.train_root / "office_0003" / "sync_depth_00002.png").unlink()
    dm = NYUDataModule(format="list", train_list=str(nyu_list.train_list), test_list=str(nyu_list.test_list),
                       train_root=str(nyu_list.train_root), eval_root=str(nyu_list.eval_root))
    with pytest.raises(DataError, match=rf"rgb_00003.png: wrong size: image is 240x320.*{nyu_list.test_list}:1"):
        dm.dataset("test")[0]
    with pytest.raises(DataError, match=rf"sync_depth_00002.png: missing file.*{nyu_list.train_list}:2"):
        dm.dataset("train")[1]


def test_malformed_list_lines_are_all_reported(tmp_path):
    tree = build_kitti(tmp_path)
    tree.list_path.write_text(tree.list_path.read_text() + "only_two fields\na b not_a_number\n")
    with pytest.raises(DataError) as info:
        _kitti_module(tree).dataset("train")
    assert {p.source for p in info.value.problems} == {f"{tree.list_path}:6", f"{tree.list_path}:7"}


def _config(tmp_path, tree) -> str:
    config = {"model": {"net": "unet"}, "data": {"class_path": "depthlab.data.KITTIDataModule", "init_args": {
        "raw_root": str(tree.raw_root), "gt_root": str(tree.gt_root), "train_list": str(tree.list_path),
        "val_list": str(tree.list_path), "test_list": str(tree.list_path), "num_workers": 0}}}
    path = tmp_path / "kitti.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.slow
def test_data_check_counts_every_problem_and_fails(tmp_path, capsys):
    tree = build_kitti(tmp_path)
    broken = _break(tree)
    code = cli_main(["data", "check", "--config", _config(tmp_path, tree), "--split", "test"])
    out = capsys.readouterr().out
    assert code == 1
    assert "test: 4 samples checked" in out and "1 list lines without ground truth skipped" in out
    for kind, (path, line) in broken.items():
        assert f"  {kind}: 1\n" in out and path in out and line in out
    assert "total: 4 problems" in out


def test_data_check_passes_a_clean_tree(tmp_path, capsys):
    tree = build_kitti(tmp_path)
    assert cli_main(["data", "check", "--config", _config(tmp_path, tree)]) == 0
    out = capsys.readouterr().out
    assert "train: 4 samples checked" in out and "total: 0 problems" in out
    assert "val:" not in out  # the val list is the test list: walked once


def test_data_check_takes_data_overrides_like_fit(tmp_path, capsys):
    # the shipped config's placeholder paths, overridden on the command line as for `depthlab fit`
    tree = build_kitti(tmp_path)
    from depthlab.data.base import REPO_ROOT

    overrides = ["--data.init_args.raw_root", str(tree.raw_root), "--data.init_args.gt_root", str(tree.gt_root)]
    for split in ("train", "val", "test"):
        overrides += [f"--data.init_args.{split}_list", str(tree.list_path)]
    code = cli_main(["data", "check", "--config", str(REPO_ROOT / "configs" / "kitti.yaml"), *overrides,
                     "--data.init_args.num_workers", "0", "--split", "train"])
    out = capsys.readouterr().out
    assert code == 0 and "train: 4 samples checked" in out and "total: 0 problems" in out
    assert cli_main(["data", "check", "--config", _config(tmp_path, tree), "--model.lr", "3"]) == 2
    assert "unknown option --model.lr" in capsys.readouterr().err


def test_data_check_config_errors_are_one_line(tmp_path, capsys):
    assert cli_main(["data", "check", "--config", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.yaml" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"data": {"class_path": "depthlab.data.KITTIDataModule",
                                            "init_args": {"raw_root": str(tmp_path / "missing")}}}))
    assert cli_main(["data", "check", "--config", str(bad)]) == 2
    assert "data.raw_root" in capsys.readouterr().err


def test_unreadable_depth_png_is_reported(tmp_path):
    tree = build_kitti(tmp_path)
    f = tree.frames[0]
    path = tree.gt_root / "train" / f["drive"] / "proj_depth" / "groundtruth" / "image_02" / "0000000005.png"
    path.write_bytes(b"garbage")
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is None
    problems = _kitti_module(tree).dataset("test").problems(0)
    assert [(p.kind, p.path) for p in problems] == [("unreadable file", str(path))]


@pytest.mark.parametrize("name, cls", [("kitti.yaml", KITTIDataModule), ("nyu.yaml", NYUDataModule)])
def test_shipped_configs_build_and_name_the_shipped_lists(name, cls, capsys):
    from depthlab.data.base import REPO_ROOT, resolve_path
    from depthlab.commands.data import build_datamodule

    config = REPO_ROOT / "configs" / name
    dm = build_datamodule(config)
    assert isinstance(dm, cls) and dm.train_augment is not None
    assert all(resolve_path(p).is_file() and "data/splits/" in p for p in dm.lists.values())
    # The placeholder paths are not edited yet: a missing folder is a config error (exit 2), a
    # missing .mat file a data problem (exit 1); both name the path.
    code = cli_main(["data", "check", "--config", str(config)])
    captured = capsys.readouterr()
    if name == "kitti.yaml":
        assert code == 2 and "data.raw_root: folder /path/to/kitti_raw does not exist" in captured.err
    else:
        assert code == 1 and "/path/to/nyu_depth_v2_labeled.mat: missing file" in captured.out


def test_check_reports_every_problem_of_a_tree_in_one_pass(tmp_path):
    # Before, each of these hid the next: a malformed list line stopped the whole split, a missing
    # file hid the KB-crop size, a right-image size mismatch hid the right depth map, and an
    # all-zero depth map was never reported.
    import io

    from depthlab.data.check import check

    tree = build_kitti(tmp_path)
    f = tree.frames
    lst = tree.list_path
    tree.list_path.write_text(tree.list_path.read_text() + "only_two fields\n")  # line 6
    gt = {i: tree.gt_root / ("val" if i == 2 else "train") / f[i]["drive"] / "proj_depth" / "groundtruth" / "image_02"
          / f"{f[i]['frame']:010d}.png" for i in range(4)}
    small = tree.raw_root / f[0]["date"] / f[0]["drive"] / "image_02" / "data" / "0000000005.png"
    write_png(small, f[0]["left"][:300, :1000])  # line 1: smaller than the KB crop, and its depth missing
    gt[0].unlink()
    right = tree.raw_root / f[1]["date"] / f[1]["drive"] / "image_03" / "data" / "0000000006.png"
    write_png(right, f[1]["right"][:370])  # line 2: right image 370 rows, and its right depth missing
    gt_right = tree.gt_root / "train" / f[1]["drive"] / "proj_depth" / "groundtruth" / "image_03" / "0000000006.png"
    gt_right.unlink()
    missing = [tree.gt_root / p.relative_to(tree.gt_root / "train") for p in (gt[0], gt_right)]  # the first place looked
    write_png(gt[3], np.zeros_like(f[3]["depth_raw"]))  # line 5: no valid pixel
    out = io.StringIO()
    total = check(_kitti_module(tree, stereo=True), ["train"], out=out)
    found = {line.strip() for line in out.getvalue().splitlines() if "(listed at" in line}
    assert found == {
        f"{lst}: bad list line: expected 'rgb_path depth_path focal', got 'only_two fields' (listed at {lst}:6)",
        f"{small}: wrong size: image is 300x1000, smaller than the 352x1216 KB crop (listed at {lst}:1)",
        f"{str(small).replace('image_02', 'image_03')}: wrong size: right image is 375x1242, left 300x1000 "
        f"(listed at {lst}:1)",
        f"{missing[0]}: missing file: no such file (listed at {lst}:1)",
        f"{right}: wrong size: right image is 370x1242, left 375x1242 (listed at {lst}:2)",
        f"{missing[1]}: missing file: no such file (listed at {lst}:2)",
        f"{gt[3]}: no valid depth: no pixel > 0 in the KB crop (listed at {lst}:5)",
    }
    assert total == 7 and "train: 4 samples checked" in out.getvalue()
