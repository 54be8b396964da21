"""``depthlab evaluate --predictions``: saved maps scored as ``depthlab test`` scores a network,
found by the names ``depthlab predict`` writes, with one line for a missing or misshapen file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from depthlab.commands.evaluate import main as evaluate
from depthlab.errors import ConfigError

H, W = 12, 16


def _own_data(root: Path, n: int = 3) -> list[np.ndarray]:
    """An own-data folder (rgb/ and 16-bit millimetre depth/); returns the depths in metres."""
    depths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        (root / "rgb").mkdir(parents=True, exist_ok=True)
        (root / "depth").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "rgb" / f"{i:04d}.png"), rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        raw = rng.integers(500, 9000, (H, W)).astype(np.uint16)
        raw[0, 0] = 0
        cv2.imwrite(str(root / "depth" / f"{i:04d}.png"), raw)
        depths.append(raw.astype(np.float32) * np.float32(1e-3))
    return depths


def _config(tmp_path: Path, data: Path, protocol: str = "none") -> Path:
    path = tmp_path / "own.yaml"
    path.write_text(f"""
model:
  net: {{name: unet, encoder: resnet18, pretrained: false}}
  max_depth: 10.0
  eval_protocol: {protocol}
data:
  class_path: depthlab.data.RGBDDataModule
  init_args: {{train: {data}, test: {data}, batch_size: 2, num_workers: 0}}
""")
    return path


def test_predictions_equal_to_ground_truth_times_1_1_score_abs_rel_0_1(tmp_path, capsys):
    depths = _own_data(tmp_path / "data")
    preds = tmp_path / "preds"
    preds.mkdir()
    for i, depth in enumerate(depths):
        np.save(preds / f"{i:04d}.npy", depth * np.float32(1.1))  # ground truth within max_depth / 1.1
    assert evaluate(["--config", str(_config(tmp_path, tmp_path / "data")), "--predictions", str(preds)]) == 0
    report = json.loads((preds / "test_metrics.json").read_text())
    assert report["metrics"]["abs_rel"] == pytest.approx(0.1, abs=1e-6)
    assert report["metrics"]["delta1"] == 1.0 and report["images"] == 3 and report["ckpt_path"] is None
    assert "abs_rel" in capsys.readouterr().out


def test_relative_predictions_need_and_get_alignment(tmp_path):
    depths = _own_data(tmp_path / "data", n=2)
    preds = tmp_path / "preds"
    preds.mkdir()
    for i, depth in enumerate(depths):
        np.save(preds / f"{i:04d}.npy", 5.0 / np.maximum(depth, 1e-3) + 0.3)
    config = str(_config(tmp_path, tmp_path / "data"))
    args = ["--config", config, "--predictions", str(preds), "--predictions_kind", "relative_inverse_depth"]
    with pytest.raises(ConfigError, match="align: scale_shift"):
        evaluate(args)
    assert evaluate(args + ["--model.eval_protocol", "{name: none, align: scale_shift}"]) == 0
    assert json.loads((preds / "test_metrics.json").read_text())["metrics"]["abs_rel"] < 1e-5


def test_missing_and_misshapen_prediction_files_are_one_line_each(tmp_path):
    depths = _own_data(tmp_path / "data", n=2)
    preds = tmp_path / "preds"
    preds.mkdir()
    np.save(preds / "0000.npy", depths[0])
    config = str(_config(tmp_path, tmp_path / "data"))
    with pytest.raises(ConfigError, match=r"no prediction for .*0001\.png.*0001\.npy nor .*0001\.png") as exc:
        evaluate(["--config", config, "--predictions", str(preds)])
    assert "\n" not in str(exc.value)
    np.save(preds / "0001.npy", np.ones((H + 1, W), np.float32))
    with pytest.raises(ConfigError, match=r"0001: the prediction is 13x16, but .* needs 12x16") as exc:
        evaluate(["--config", config, "--predictions", str(preds)])
    assert "\n" not in str(exc.value)
