"""depthlab/experiments/extras.py: the extras' data module."""

from __future__ import annotations

import pytest
import yaml

from depthlab.errors import ConfigError
from depthlab.experiments import load_experiment
from experiment_specs import BASE, write_spec


def test_extras_build_the_data_module_the_runs_saved(tmp_path):
    """An extra's data module is the one in the `config.yaml` that the first variant's fit saved (fully
    resolved), not a second parse of the configs."""
    from depthlab.data.synthetic import SyntheticDataModule
    from depthlab.experiments.extras import experiment_datamodule

    exp = load_experiment(write_spec(tmp_path / "e", {**BASE, "variants": [{"name": "a", "configs": ["a.yaml"]},
                                                                            {"name": "b", "configs": ["a.yaml"]}]}, {"a.yaml": "{}"}))
    runs = tmp_path / "runs" / "small"
    with pytest.raises(ConfigError, match=r"experiment e: no config.yaml of a finished fit run under .*runs/small"):
        experiment_datamodule(exp, runs)
    for variant, size in (("b", 5), ("a", 3)):
        folder = runs / variant / "seed0" / "lightning_logs" / "version_0"
        folder.mkdir(parents=True)
        data = {"class_path": "depthlab.data.SyntheticDataModule",
                "init_args": {"height": 32, "width": 48, "test_size": size, "seed": 7, "num_workers": 0}}
        (folder / "config.yaml").write_text(yaml.safe_dump({"model": {"lr": 0.1}, "data": data}))
    datamodule = experiment_datamodule(exp, runs)
    assert isinstance(datamodule, SyntheticDataModule)
    assert datamodule.sizes["test"] == 3 and datamodule.seed == 7  # variant a's: the first in spec order


def test_pose_snippets_are_the_videos_the_runs_trained_on():
    """The pose error's snippets are the data module's own videos (its anti-aliasing and speed, not
    the defaults), as long as the room allows: -2..2 at the default speed, -1..2 up to 0.45 m a frame."""
    import torch

    from depthlab.data.synthetic import SyntheticDataModule
    from depthlab.experiments.extras import pose_snippets

    fast = SyntheticDataModule(height=24, width=32, test_size=2, num_workers=0, frame_ids=[0, -1, 1],
                               supersample=2, trajectory_speed_m=(0.3, 0.45))
    order, samples = pose_snippets(fast, "test", 5)
    assert order == [-1, 0, 1, 2] and len(samples) == 2
    trained_on = fast.dataset("test")[1]
    for key in ("image", "image_f-1", "image_f+1", "pose_f-1", "pose_f+1"):
        assert torch.equal(samples[1][key], trained_on[key]), key
    assert float(samples[1]["pose_f+1"][2, 3]) < -0.3  # the camera moved >= 0.3 m forward (points come nearer)
    slow = SyntheticDataModule(height=24, width=32, test_size=1, num_workers=0, frame_ids=[0, -1, 1])
    assert pose_snippets(slow, "test", 1)[0] == [-2, -1, 0, 1, 2]


def test_report_cells_keep_integers_as_written():
    from depthlab.experiments.report import _cell

    assert [_cell("0"), _cell("64"), _cell("0.5"), _cell("-1..2"), _cell("0.0001")] == ["0", "64", "0.5000", "-1..2", "1.000e-04"]
