"""Once-per-experiment measurements that are not training runs; each writes a CSV table.

An extra is ``fn(target_csv, exp=..., scale=..., runs=..., **args)`` (``runs``: the scale's runs folder,
``<out>/<scale>``); ``experiment.yaml`` lists it under ``extras``, ``run`` calls it after the variants,
and the report shows the table.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import yaml

from depthlab.errors import ConfigError
from depthlab.experiments.spec import Experiment


def experiment_datamodule(exp: Experiment, runs: Path) -> Any:
    """The data module the experiment's fit runs trained on (those of its first variant that ran).

    ``depthlab fit`` saves the configuration it parsed, fully resolved, as ``config.yaml`` beside its
    logs; its ``data`` section is instantiated here with jsonargparse, as LightningCLI does. So the
    data module is the runs' own (same configs, same ``data.*`` settings), and this package needs no
    parser of its own and no import of the command layer."""
    import lightning as L
    from jsonargparse import ArgumentParser

    # the first variant (spec order) that ran
    saved = [path for variant in exp.variants for path in sorted((runs / variant.name).glob("seed*/*/version_*/config.yaml"))]
    if not saved:
        raise ConfigError(f"experiment {exp.name}: no config.yaml of a finished fit run under {runs} "
                          "(an extra reads the data settings of the experiment's runs; run its variants first)")
    section = (yaml.safe_load(saved[0].read_text()) or {}).get("data")
    if not section:
        raise ConfigError(f"experiment {exp.name}: {saved[0]} has no data section")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(L.LightningDataModule, "data", required=True)
    return parser.instantiate_classes(parser.parse_object({"data": section})).data


def hint_quality(target: Path, exp: Experiment, scale: str, runs: Path, split: str = "test", pairs: int | None = None) -> None:
    """Coverage and accuracy of each single SGM setting of the published grid and of the fused hints,
    on the left views of ``split`` against their ground truth (:func:`depthlab.hints.hint_quality`)."""
    from depthlab.data.synthetic import SyntheticDataModule, _uint8, render_sample
    from depthlab.hints import hint_quality as measure

    datamodule = experiment_datamodule(exp, runs)
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
