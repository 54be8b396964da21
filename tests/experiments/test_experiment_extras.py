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
