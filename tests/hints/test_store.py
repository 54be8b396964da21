"""Hint files are written whole or not at all; a hints folder made another way is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

import depthlab
from depthlab.data.readers import DataError, read_hint
from depthlab.errors import ConfigError
from depthlab.hints import PUBLISHED_GRID, SGMSetting
from depthlab.hints.store import MANIFEST_NAME, check_hints_data, claim_hints_root, make_manifest, save_hint

DATA = {"dataset": "synthetic", "seed": 0}


def _manifest(settings=PUBLISHED_GRID, size=None, data=DATA) -> dict:
    return make_manifest(settings, size, data, "<split>/image_0{2,3}/<index:06d>.npy", "grid")


def test_save_hint_writes_float32_1hw_and_leaves_no_partial(tmp_path):
    path = tmp_path / "a" / "b" / "0000000005.npy"
    depth = np.array([[0.0, 1.5], [2.25, 0.0]])
    save_hint(path, depth)
    assert sorted(p.name for p in path.parent.iterdir()) == ["0000000005.npy"]
    stored = np.load(path)
    assert stored.dtype == np.float32 and stored.shape == (1, 2, 2) and stored[0].tolist() == depth.tolist()
    assert np.array_equal(read_hint(path, (2, 2), "list.txt:3"), depth.astype(np.float32))


@pytest.mark.parametrize("bad, kind", [
    (np.zeros((1, 2, 3), np.float64), "hint must be float32, got float64"),
    (np.zeros((2, 3), np.float32), r"hint is \(2, 3\), its image needs \(1, 2, 3\)"),
    (np.zeros((1, 3, 2), np.float32), r"hint is \(1, 3, 2\), its image needs \(1, 2, 3\)"),
])
def test_read_hint_names_file_and_list_line(tmp_path, bad, kind):
    path = tmp_path / "h.npy"
    np.save(path, bad)
    with pytest.raises(DataError, match=rf"{path}: wrong (dtype|size): {kind} \(listed at list.txt:7\)"):
        read_hint(path, (2, 3), "list.txt:7")
    path.write_bytes(b"not numpy")
    with pytest.raises(DataError, match=rf"{path}: unreadable file: not a .npy array"):
        read_hint(path, (2, 3), "list.txt:7")
    with pytest.raises(DataError, match=rf"{tmp_path / 'gone.npy'}: missing file: .*listed at list.txt:7"):
        read_hint(tmp_path / "gone.npy", (2, 3), "list.txt:7")


def test_first_claim_writes_the_manifest_later_equal_ones_resume(tmp_path):
    root = tmp_path / "hints"
    assert claim_hints_root(root, _manifest()) is True
    written = json.loads((root / MANIFEST_NAME).read_text())
    assert written["sgm_settings"][0] == {"block_size": 1, "num_disparities": 64, "pre_filter_cap": 63, "p1": 36,
                                          "p2": 288, "min_disparity": 0, "uniqueness_ratio": 10,
                                          "speckle_window_size": 100, "speckle_range": 16}
    assert written["compute_size"] is None and written["data"] == DATA
    assert written["depthlab_version"] == depthlab.__version__
    later = _manifest() | {"depthlab_version": "9.9", "created": "tomorrow"}  # not compared
    assert claim_hints_root(root, later) is False


@pytest.mark.parametrize("change, named", [
    ({"settings": PUBLISHED_GRID[:2]}, "sgm_settings: folder 12 settings [bs1 nd64, "),
    ({"settings": [SGMSetting(1, 64, p2=300)] + list(PUBLISHED_GRID[1:])}, "sgm_settings"),
    ({"size": (320, 1024)}, "compute_size: folder native size, now [320, 1024]"),
    ({"data": {"dataset": "synthetic", "seed": 1}}, "data: folder"),
])
def test_a_folder_made_another_way_is_refused(tmp_path, change, named):
    claim_hints_root(tmp_path, _manifest())
    with pytest.raises(ConfigError, match="was made with other settings") as info:
        claim_hints_root(tmp_path, _manifest(**change))
    assert named in str(info.value) and "\n" not in str(info.value)


def test_hint_files_without_a_manifest_are_not_adopted(tmp_path):
    save_hint(tmp_path / "train" / "image_02" / "000000.npy", np.ones((2, 2)))
    with pytest.raises(ConfigError, match=r"holds .npy files but no manifest.json"):
        claim_hints_root(tmp_path, _manifest())


def test_loading_refuses_hints_of_other_data(tmp_path):
    check_hints_data(tmp_path, DATA, "data.hints_root")  # no manifest: files are checked one by one
    claim_hints_root(tmp_path, _manifest())
    check_hints_data(tmp_path, DATA, "data.hints_root")
    with pytest.raises(ConfigError, match=r"data.hints_root: .*manifest.json was made from other data"):
        check_hints_data(tmp_path, {"dataset": "kitti"}, "data.hints_root")
