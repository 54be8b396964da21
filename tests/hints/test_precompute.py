"""``depthlab hints precompute``: resumable, the same files with any number of workers, failures
named by list line while the other pairs finish, foreign folders refused; KITTI hints at full frame."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from depthlab.cli import main as cli_main
from depthlab.data import KITTIDataModule, SyntheticDataModule
from depthlab.data.kitti import kb_crop_box
from depthlab.errors import ConfigError
from depthlab.hints import PUBLISHED_GRID, compute_stereo_hints, random_settings
from depthlab.hints.precompute import list_jobs, precompute

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from data_trees import build_kitti  # noqa: E402

# 32x96 synthetic pairs: only the three numDisparities-64 settings of the grid fit that width, which
# keeps a run at a fraction of a second while exercising the default settings.
SYNTHETIC = dict(height=32, width=96, train_size=4, val_size=1, test_size=1, batch_size=2, num_workers=0)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != "manifest.json"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hints") / "synthetic"
    summary = precompute(SyntheticDataModule(**SYNTHETIC), root, workers=1, progress=False)
    assert (summary.pairs, summary.computed, summary.skipped, summary.failures) == (6, 6, 0, [])
    return root


def test_layout_one_float32_file_per_view_and_sample(uninterrupted):
    names = sorted(_files(uninterrupted))
    assert names == sorted(f"{split}/{camera}/{i:06d}.npy" for split, n in (("train", 4), ("val", 1), ("test", 1))
                           for i in range(n) for camera in ("image_02", "image_03"))
    hint = np.load(uninterrupted / "train" / "image_03" / "000002.npy")
    assert hint.dtype == np.float32 and hint.shape == (1, 32, 96) and (hint > 0).mean() > 0.2


def test_precomputed_hints_load_and_equal_the_on_the_fly_ones(uninterrupted):
    stored = SyntheticDataModule(**SYNTHETIC, hints_root=str(uninterrupted))
    live = SyntheticDataModule(**SYNTHETIC, hints_on_the_fly=True)
    for split in ("train", "test"):
        for index in range(len(stored.dataset(split))):
            a, b = stored.dataset(split)[index], live.dataset(split)[index]
            for key in ("hint", "hint_valid", "hint_right", "hint_valid_right"):
                assert np.array_equal(a[key].numpy(), b[key].numpy()), (split, index, key)
            stored_left = np.load(uninterrupted / split / "image_02" / f"{index:06d}.npy")[0]
            assert np.array_equal(a["hint"][0].numpy(), stored_left)
    batch = next(iter(stored.train_dataloader()))
    assert set(batch) == stored.provides == live.provides
    assert batch["hint"].shape == (2, 1, 32, 96) and (batch["hint_valid"] == (batch["hint"] > 0)).all()


def test_an_interrupted_run_resumes_to_the_same_files(uninterrupted, tmp_path):
    dm = SyntheticDataModule(**SYNTHETIC)
    root = tmp_path / "hints"
    first = precompute(dm, root, workers=1, limit=2, progress=False)  # stopped after two pairs
    assert first.computed == 2 and len(_files(root)) == 4
    jobs = list_jobs(dm)
    # A kill inside save_hint leaves only a .partial; one between the two renames leaves one view.
    (root / (jobs[2].outputs[0] + ".partial")).parent.mkdir(parents=True, exist_ok=True)
    (root / (jobs[2].outputs[0] + ".partial")).write_bytes(b"half a file")
    left_only = root / jobs[3].outputs[0]
    left_only.parent.mkdir(parents=True, exist_ok=True)
    left_only.write_bytes((uninterrupted / jobs[3].outputs[0]).read_bytes())
    second = precompute(dm, root, workers=1, progress=False)
    assert (second.skipped, second.computed) == (2, 4)
    assert _files(root) == _files(uninterrupted)  # byte for byte, and no .partial left behind
    third = precompute(dm, root, workers=1, progress=False)
    assert (third.skipped, third.computed) == (6, 0)


@pytest.mark.slow
def test_two_worker_processes_write_the_same_files_as_one(uninterrupted, tmp_path):
    summary = precompute(SyntheticDataModule(**SYNTHETIC), tmp_path, workers=2, progress=False)
    assert summary.computed == 6
    assert _files(tmp_path) == _files(uninterrupted)


def test_a_folder_made_with_other_settings_or_size_is_refused(uninterrupted):
    before = _files(uninterrupted)
    dm = SyntheticDataModule(**SYNTHETIC)
    with pytest.raises(ConfigError, match="sgm_settings: folder 12 settings"):
        precompute(dm, uninterrupted, settings=PUBLISHED_GRID[:4], progress=False)
    with pytest.raises(ConfigError, match=r"compute_size: folder native size, now \[16, 80\]"):
        precompute(dm, uninterrupted, size=(16, 80), progress=False)
    with pytest.raises(ConfigError, match="data: folder"):  # another seed renders other images
        precompute(SyntheticDataModule(**SYNTHETIC | {"seed": 1}), uninterrupted, progress=False)
    assert _files(uninterrupted) == before


# -- KITTI through the command line ------------------------------------------------------------------
FAST = ["--size", "48", "160", "--settings", "random", "--num_settings", "2", "--settings_seed", "0", "--no_progress"]


def _kitti_config(tmp_path: Path, tree, **init_args) -> str:
    args = {"raw_root": str(tree.raw_root), "gt_root": str(tree.gt_root), "train_list": str(tree.list_path),
            "val_list": str(tree.list_path), "test_list": str(tree.list_path), "stereo": True, "kb_crop": False,
            "num_workers": 0} | init_args
    path = tmp_path / "kitti.yaml"
    path.write_text(yaml.safe_dump({"model": {"net": "unet"},
                                    "data": {"class_path": "depthlab.data.KITTIDataModule", "init_args": args}}))
    return str(path)


def test_kitti_hints_are_full_frame_and_cropped_with_the_sample(tmp_path, capsys):
    tree = build_kitti(tmp_path)
    root = tmp_path / "hints"
    code = cli_main(["hints", "precompute", "--config", _kitti_config(tmp_path, tree, hints_root=str(root)),
                     "--workers", "1", *FAST])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "hints precompute: 4 pairs" in out and "computed 4 pairs" in out and "0 failed" in out
    assert "coverage: " in out and "of the pixels have a hint" in out
    settings = random_settings(2, 0)
    for frame in tree.frames:
        h, w = frame["size"]
        folder = root / frame["date"] / frame["drive"]
        left, right = (np.load(folder / camera / f"{frame['frame']:010d}.npy") for camera in ("image_02", "image_03"))
        assert left.shape == right.shape == (1, h, w) and left.dtype == np.float32
        # Computed on the full frame with the calibrated fx and baseline, not on a crop.
        p02, p03 = frame["p02"], frame["p03"]
        baseline = p03[3] / -p03[0] - p02[3] / -p02[0]
        expected = compute_stereo_hints(frame["left"], frame["right"], p02[0], baseline, settings, (48, 160))
        assert np.array_equal(left[0], expected.depth) and np.array_equal(right[0], expected.depth_right)

    # Loaded with the sample, cut by the KB crop with it.
    dm = KITTIDataModule(**yaml.safe_load(Path(tmp_path / "kitti.yaml").read_text())["data"]["init_args"]
                         | {"eval_kb_crop": True})
    sample = dm.dataset("test")[3]
    frame = tree.frames[3]
    top, left_col = kb_crop_box(*frame["size"])
    stored = np.load(root / frame["date"] / frame["drive"] / "image_03" / f"{frame['frame']:010d}.npy")[0]
    assert sample["hint_right"].shape == (1, 352, 1216)
    assert np.array_equal(sample["hint_right"][0].numpy(), stored[top:top + 352, left_col:left_col + 1216])


def test_a_corrupt_image_is_named_with_its_list_line_and_the_rest_finish(tmp_path, capsys):
    tree = build_kitti(tmp_path)
    frame = tree.frames[1]  # list line 2
    bad = tree.raw_root / frame["date"] / frame["drive"] / "image_03" / "data" / "0000000006.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    root = tmp_path / "hints"
    code = cli_main(["hints", "precompute", "--config", _kitti_config(tmp_path, tree), "--hints_root", str(root),
                     "--workers", "1", *FAST])
    out = capsys.readouterr().out
    assert code == 1
    assert "computed 3 pairs" in out and "1 failed" in out and "1 pair failed" in out
    assert f"{bad}: unreadable file: not a decodable image (listed at {tree.list_path}:2)" in out
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*.npy"))
    assert len(written) == 6 and not any("0000000006" in name for name in written)


def test_the_command_refuses_other_settings_and_takes_data_overrides(tmp_path, capsys):
    tree = build_kitti(tmp_path)
    config = _kitti_config(tmp_path, tree)
    root = tmp_path / "hints"
    base = ["hints", "precompute", "--config", config, "--data.hints_root", str(root), "--workers", "1",
            "--split", "train", "--data.train_list", str(tree.list_path)]
    assert cli_main(base + FAST) == 0
    capsys.readouterr()
    assert cli_main(base + FAST[:-1] + ["--settings_seed", "1", "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"hints folder {root} was made with other settings (sgm_settings" in err
    assert cli_main(["hints", "precompute", "--config", config, *FAST]) == 2
    assert "set data.init_args.hints_root in the config or give --hints_root" in capsys.readouterr().err


def test_a_data_module_config_error_is_one_line(tiny_config, tmp_path, capsys):
    code = cli_main(["hints", "precompute", "--config", str(tiny_config), "--data.hints_root", str(tmp_path),
                     "--data.hints_on_the_fly", "true", "--no_progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "hints_root and hints_on_the_fly exclude each other" in err
