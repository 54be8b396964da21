"""docs/data.md, "Write a data module": the worked example, executed as the docs print it."""

from __future__ import annotations

import io
import re
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from depthlab.data.check import check

DOCS = Path(__file__).resolve().parents[2] / "docs" / "data.md"


@pytest.fixture(scope="module")
def example() -> types.ModuleType:
    section = DOCS.read_text().split("## Write a data module", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    module = types.ModuleType("my_data")
    exec(compile(code, "docs/data.md (Write a data module)", "exec"), module.__dict__)
    return module


def test_the_documented_module_reads_disparity_as_depth(example, tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        (tmp_path / split / "left").mkdir(parents=True)
        (tmp_path / split / "disp").mkdir()
        for i in range(2):
            cv2.imwrite(str(tmp_path / split / "left" / f"{i}.png"), rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))
            disparity = rng.integers(256, 256 * 60, (10, 12)).astype(np.uint16)
            disparity[0, 0] = 0
            cv2.imwrite(str(tmp_path / split / "disp" / f"{i}.png"), disparity)
    dm = example.DisparityDataModule(str(tmp_path), fx=721.5, baseline_m=0.54, num_workers=0,
                                     train_transforms=[{"name": "HorizontalFlip", "p": 1.0}])
    sample = dm.dataset("val")[1]
    raw = cv2.imread(str(tmp_path / "val" / "disp" / "1.png"), cv2.IMREAD_UNCHANGED)
    assert sample["depth"][0, 3, 4].item() == pytest.approx(721.5 * 0.54 / (raw[3, 4] / 256), rel=1e-6)
    assert not sample["valid"][0, 0, 0]
    assert sample["intrinsics"].tolist() == pytest.approx([721.5, 721.5, 5.5, 4.5])
    assert set(sample) == set(dm.provides)
    flipped = dm.dataset("train")[0]  # the base class's augmentation: mirrored with the camera
    assert flipped["intrinsics"][2].item() == pytest.approx(11 - 5.5)
    out = io.StringIO()
    assert check(dm, out=out) == 0 and "total: 0 problems" in out.getvalue()
