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


def pose_snippets(datamodule: Any, split: str, count: int) -> tuple[list[int], list[dict[str, Any]]]:
    """The first ``count`` samples of ``split`` as test snippets for the pose error: the data module's
    own scenes and videos (its scene settings, anti-aliasing, speed and heading included), with the
    frames around the target that its videos allow: -2..2 as Monodepth2's 5-frame snippets where the
    camera is slow enough (at most 0.225 m a frame), -1..2 up to 0.45 m a frame (the room's back wall
    is :data:`~depthlab.data.synthetic.MAX_BACKWARD_M` behind the target camera). Returns the frame
    order (first to last) and the samples."""
    from depthlab.data.synthetic import MAX_FRAME_OFFSET, SyntheticStereoDataset, frames_back

    order = list(range(-frames_back(datamodule.trajectory_speed_m[1]), MAX_FRAME_OFFSET + 1))
    dataset = SyntheticStereoDataset(datamodule.scene, split, datamodule.sizes[split], datamodule.seed,
                                     scale_range=datamodule.scale_range, frame_ids=order,
                                     speed_m=datamodule.trajectory_speed_m, heading_deg=datamodule.trajectory_heading_deg)
    return order, [dataset[i] for i in range(min(count, len(dataset)))]


def pose_ate(target: Path, exp: Experiment, scale: str, runs: Path, split: str = "test", snippets: int = 64) -> None:
    """Absolute trajectory error of each pose network's snippets of consecutive frames of the
    procedural test videos (:func:`pose_snippets`: frames -2..2, or -1..2 for faster cameras), as
    Monodepth2's odometry evaluation: consecutive pairs give the motion from each frame to the next,
    chained from the snippet's first frame, scale-aligned to the true ones, in Monodepth2's arithmetic
    (:mod:`depthlab.pose.odometry`: ``dump_xyz``'s points, sqrt(sum of squared errors) / N). Rows per
    (variant with a pose network, seed), with the same network untrained and a camera standing still
    for scale."""
    import numpy as np
    import torch

    from depthlab.checkpointing.io import read_checkpoint
    from depthlab.data.synthetic import SyntheticDataModule
    from depthlab.experiments.runner import last_checkpoint
    from depthlab.pose import build as build_pose
    from depthlab.pose.odometry import chain_positions, pose_net_from_checkpoint, snippet_ate

    datamodule = experiment_datamodule(exp, runs)
    if not isinstance(datamodule, SyntheticDataModule):
        raise TypeError(f"experiment {exp.name}: extras pose_ate needs procedural videos (their true camera motion)")
    order, samples = pose_snippets(datamodule, split, snippets)
    count = len(samples)
    frames = f"{order[0]}..{order[-1]}"

    def true_positions(sample) -> np.ndarray:  # SfMLearner's dump_xyz of the true steps (depthlab.pose.odometry)
        poses = {k: sample[f"pose_f{k:+d}"].double().numpy() if k else np.eye(4) for k in order}
        return chain_positions([poses[b] @ np.linalg.inv(poses[a]) for a, b in zip(order[:-1], order[1:])])

    def predicted_positions(net, sample) -> np.ndarray:
        images = torch.stack([sample[f"image_f{k:+d}"] if k else sample["image"] for k in order])
        with torch.no_grad():
            steps = net.pose(images[:-1], images[1:]).double().numpy()  # a-camera points -> b-camera points
        return chain_positions(steps)

    truth = [true_positions(s) for s in samples]
    still = [snippet_ate(g, np.zeros_like(g)) for g in truth]  # a camera standing still: scale 0
    rows = []
    for variant in exp.variants:
        for seed_dir in sorted((runs / variant.name).glob("seed*")):
            try:
                ckpt = last_checkpoint(seed_dir)
            except Exception:  # noqa: BLE001  (a variant that did not run or has no pose network)
                continue
            checkpoint = read_checkpoint(ckpt)
            hp = checkpoint.get("hyper_parameters", {})
            if not hp.get("pose_net"):
                continue
            trained = pose_net_from_checkpoint(checkpoint, ckpt)
            torch.manual_seed(0)  # the untrained network: the same initial weights for every run
            nets = {"trained": trained, "untrained": build_pose(hp["pose_net"]).eval()}
            errors = {name: [snippet_ate(g, predicted_positions(net, s)) for s, g in zip(samples, truth)]
                      for name, net in nets.items()}
            rows.append([variant.name, seed_dir.name.removeprefix("seed"), count, frames,
                         repr(float(np.mean(errors["trained"]))), repr(float(np.std(errors["trained"]))),  # np.std as the script
                         repr(float(np.mean(errors["untrained"]))), repr(float(np.mean(still)))])
    with open(target, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "seed", "snippets", "frames", "ate_mean", "ate_std", "untrained_mean", "still_mean"])
        writer.writerows(rows)
