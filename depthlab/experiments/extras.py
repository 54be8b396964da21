"""Once-per-experiment measurements that are not training runs; each writes a CSV table.

An extra is ``fn(target_csv, exp=..., scale=..., **args)``; ``experiment.yaml`` lists it under
``extras`` and the report shows the table.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from depthlab.experiments.runner import shared_args
from depthlab.experiments.spec import Experiment


def experiment_datamodule(exp: Experiment, scale: str) -> Any:
    """The data module of the experiment's shared configs at ``scale`` (as its runs build it)."""
    from depthlab.parser import datamodule_from_config

    return datamodule_from_config(shared_args(exp, scale), prog=f"depthlab experiment {exp.name}")


def hint_quality(target: Path, exp: Experiment, scale: str, split: str = "test", pairs: int | None = None) -> None:
    """Coverage and accuracy of each single SGM setting of the published grid and of the fused hints,
    on the left views of ``split`` against their ground truth (:func:`depthlab.hints.hint_quality`)."""
    from depthlab.data.synthetic import SyntheticDataModule, _uint8, render_sample
    from depthlab.hints import hint_quality as measure

    datamodule = experiment_datamodule(exp, scale)
    if not isinstance(datamodule, SyntheticDataModule):
        raise TypeError(f"experiment {exp.name}: extras hint_quality needs the synthetic data module (dense ground truth)")
    cfg = datamodule.scene
    count = min(pairs or datamodule.sizes[split], datamodule.sizes[split])

    def samples():
        for index in range(count):
            s = render_sample(cfg, datamodule.seed, split, index)
            yield _uint8(s["image"]), _uint8(s["image_right"]), cfg.intrinsics[0], cfg.baseline_m, s["depth"][0].numpy()

    rows = measure(samples())
    with open(target, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["hints", "coverage", "abs_rel", "within_5pct", "gt_pixels"])
        for r in rows:
            writer.writerow([r.name, repr(r.coverage), repr(r.abs_rel), repr(r.accurate), r.gt_pixels])
