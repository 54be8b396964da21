"""Every shipped config trains as before: the first training losses of seeded runs, recorded from the
code before the optimiser/scheduler set-up moved to depthlab.training (issue 17), match to 1e-5 relative.

The runs stop after N batches from a hook (trainer.should_stop), not with trainer.max_steps, so that the
schedule is the one of the full run (the main job: 600 steps, 30 of warm-up). Validation is off
(limit_val_batches 0); the data are a pure function of (seed, index), the loader's worker count does
not change them (checked when recording).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from depthlab.cli import main
from depthlab.module import DepthModule

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# configs/synthetic.yaml (AdamW, warm-up + cosine over 600 steps), recorded before the move.
MAIN_JOB = [0.24369189143180847, 0.22824716567993164, 0.28538650274276733, 0.16767051815986633, 0.24177898466587067,
            0.16532714664936066, 0.2226070612668991, 0.17124973237514496, 0.1748722493648529, 0.1326037496328354]
# configs/experiments/synthetic_small.yaml + silog_sqrt/eigen.yaml (optimizer: sgd) at a tiny size.
SGD_COSINE = [0.29160013794898987, 0.2576819956302643, 0.18920734524726868, 0.20278705656528473, 0.22056680917739868]
# synthetic_small.yaml with scheduler: onecycle (no shipped config uses it; the short name keeps its behaviour).
ADAMW_ONECYCLE = [0.3528740108013153, 0.2889048457145691, 0.19362129271030426, 0.20527012646198273,
                  0.24687081575393677]

TINY = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "5", "--trainer.limit_val_batches", "0",
        "--data.init_args.train_size", "10", "--data.init_args.batch_size", "2", "--data.init_args.height", "64",
        "--data.init_args.width", "64", "--data.init_args.cache", "false"]


def _first_losses(monkeypatch, tmp_path, n: int, args: list[str]) -> list[float]:
    losses: list[float] = []

    def on_train_batch_end(self, outputs, batch, batch_idx):
        losses.append(float(outputs["loss"]))
        if len(losses) >= n:
            self.trainer.should_stop = True

    monkeypatch.setattr(DepthModule, "on_train_batch_end", on_train_batch_end, raising=False)
    monkeypatch.chdir(tmp_path)
    rc = main(["fit", *args, "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)])
    assert rc in (0, None)
    return losses


@pytest.mark.slow
def test_main_job_first_ten_losses_are_unchanged(monkeypatch, tmp_path):
    losses = _first_losses(monkeypatch, tmp_path, 10, [
        "--config", str(CONFIGS / "synthetic.yaml"), "--trainer.limit_val_batches", "0",
        "--data.init_args.num_workers", "0"])
    assert losses == pytest.approx(MAIN_JOB, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("extra, expected", [
    (["--config", str(CONFIGS / "experiments" / "silog_sqrt" / "eigen.yaml")], SGD_COSINE),
    (["--model.scheduler", "onecycle", "--model.warmup", "2"], ADAMW_ONECYCLE),
], ids=["sgd_cosine", "adamw_onecycle"])
def test_short_optimizer_and_schedule_names_train_as_before(monkeypatch, tmp_path, extra, expected):
    losses = _first_losses(monkeypatch, tmp_path, 5, [
        "--config", str(CONFIGS / "experiments" / "synthetic_small.yaml"), *extra, *TINY])
    assert losses == pytest.approx(expected, rel=1e-5)
