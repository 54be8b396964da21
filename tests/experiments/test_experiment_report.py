"""depthlab/experiments/report.py: the conclusion's arithmetic and the curves, by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from depthlab.experiments import load_experiment
from depthlab.experiments.report import Results, Run, compare, mean_curve
from depthlab.experiments.runner import RunRecord
from experiment_specs import BASE, write_spec


def _results(values: dict[str, list[float]], tmp_path: Path) -> Results:
    folder = write_spec(tmp_path / "r", {**BASE, "variants": [{"name": v, "configs": ["a.yaml"]} for v in values]},
                         {"a.yaml": "{}"})
    exp = load_experiment(folder)
    runs = {v: [Run(v, s, RunRecord(v, s, "small", [], 1.0, {"test": []}), {}, {"test": {"test/abs_rel": [(10, x)]}})
                for s, x in enumerate(xs)] for v, xs in values.items()}
    return Results(exp, "small", [0, 1, 2], runs)


def test_conclusion_compares_the_gap_with_the_seed_spread(tmp_path):
    # a: mean 0.2, std 0.01; b: mean 0.25 (gap 0.05 > 2 x 0.01); c: mean 0.205, within the spread
    r = _results({"a": [0.19, 0.2, 0.21], "b": [0.24, 0.25, 0.26], "c": [0.195, 0.205, 0.215]}, tmp_path)
    assert r.summary("a", "abs_rel") == pytest.approx((0.2, 0.01, 3))
    assert "a is better than b on abs_rel (0.2000 vs 0.2500; gap 0.0500, more than twice" in compare(r, "a", "b", "abs_rel")
    assert "within the seed spread (0.0100): no difference" in compare(r, "c", "a", "abs_rel")
    r = _results({"a": [0.2, 0.2, 0.2], "b": [0.215, 0.2, 0.23]}, tmp_path / "2")  # gap 0.015, spread 0.015: within
    assert "within the seed spread" in compare(r, "a", "b", "abs_rel")
    r = _results({"a": [0.2, 0.2, 0.2], "b": [0.225, 0.21, 0.24]}, tmp_path / "3")  # gap 0.025 in (0.015, 0.03]
    assert "a weak difference" in compare(r, "a", "b", "abs_rel")


def test_mean_curve_uses_the_steps_every_seed_logged():
    steps, mean, lo, hi = mean_curve([[(0, 1.0), (5, 3.0), (10, 5.0)], [(0, 3.0), (10, 7.0)]])
    assert steps == [0, 10] and mean == [2.0, 6.0] and lo == [1.0, 5.0] and hi == [3.0, 7.0]
