"""Every experiment runs end to end at its ``tiny`` scale (a few steps, one or two of its variants: the
scale's ``variants``) through the ordinary `depthlab fit`/`test`, and its report shows exactly the numbers
in the runs' logs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from depthlab.cli import main  # noqa: E402
from depthlab.experiments import list_experiments, load_experiment  # noqa: E402
from depthlab.experiments import main as experiment  # noqa: E402

EXPERIMENTS = ["silog_sqrt", "toy_root_mae", "losses", "depth_hints", "scale_invariance", "eigen_coarse_fine",
               "self_supervision"]


def test_the_shipped_experiments_are_listed(capsys):
    assert sorted(list_experiments()) == sorted(EXPERIMENTS)
    assert main(["experiment", "list"]) == 0
    listed = capsys.readouterr().out
    for name in EXPERIMENTS:
        assert re.search(rf"^{name}\s", listed, re.M), name


def _events(folder: Path) -> dict[str, float]:
    """The last value of every scalar in the event files under ``folder``, read with TensorBoard itself."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values = {}
    for path in sorted(folder.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            values[tag] = acc.Scalars(tag)[-1].value
    return values


def _csv_last(path: Path) -> dict[str, float]:
    import csv

    with open(path, newline="") as f:
        return {row["tag"]: float(row["value"]) for row in csv.DictReader(f)}


def _table(report: str, heading: str | None = None) -> tuple[list[str], dict[str, list[str]]]:
    """Columns and rows (label -> cells) of the first Markdown results table (after ``heading``)."""
    text = report.split("## Results", 1)[1]
    if heading:
        text = text.split(f"**{heading}**", 1)[1]
    all_lines = text.splitlines()
    start = next(i for i, line in enumerate(all_lines) if line.startswith("|"))
    lines = []
    for line in all_lines[start:]:  # the first block of table lines only
        if not line.startswith("|"):
            break
        lines.append(line)
    columns = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
        assert len(cells) == len(columns), line
        rows[cells[0]] = [c.split(" ± ")[0] for c in cells[1:]]
    return columns, rows


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_at_tiny_scale_and_reports_the_logged_numbers(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths in the configs (hints folder, logs) land here
    exp = load_experiment(name)
    out = tmp_path / "runs"
    docs = out / "tiny" / "report"  # the default: beside the runs
    # the runs go through depthlab's own command line, as `depthlab experiment` does
    assert experiment(["run", name, "--scale", "tiny", "--out", str(out)], main) == 0

    report = (docs / f"{name}.md").read_text()
    assert exp.title in report and "## Conclusion" in report and "## Setup" in report
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", report)
    variants = exp.variants_at("tiny")
    ran = {v.name for v in variants}
    drawable = [p for p in exp.plots if not p.variants or ran & set(p.variants)]  # a plot of variants run at this scale
    assert len(images) >= len(drawable) > 0
    for image in images:
        png = docs / image
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image

    numbers = json.loads((docs / name / "results.json").read_text())["tables"]
    seed = exp.scale("tiny").seeds[0]
    for evaluation in exp.evaluations if exp.kind == "fit" else [None]:  # every table of the report
        heading = evaluation.label or evaluation.name if evaluation is not None and len(exp.evaluations) > 1 else None
        columns, rows = _table(report, heading)
        assert columns[1:] == list(exp.metrics)
        assert list(rows) == [v.label or v.name for v in variants]
        for variant in variants:
            run = out / "tiny" / variant.name / f"seed{seed}"
            if evaluation is not None:
                logged = _events(run / "eval" / evaluation.name)
                expected = [logged[f"test/{m}"] for m in exp.metrics]
                # DepthModule's own JSON of the same test run agrees with the event files
                (metrics_json,) = (run / "eval" / evaluation.name).rglob("test_metrics.json")
                saved = json.loads(metrics_json.read_text())
                saved = saved.get("metrics", saved)
                for m, value in zip(exp.metrics, expected):
                    assert saved[m] == pytest.approx(value, rel=1e-6), (variant.name, m)
            else:
                logged = _csv_last(run / "metrics.csv")
                expected = [logged[m] for m in exp.metrics]
            shown = rows[variant.label or variant.name]
            for metric, cell, value in zip(exp.metrics, shown, expected):
                assert float(cell) == pytest.approx(value, rel=2e-3, abs=1e-4), (variant.name, metric, cell, value)
            table = numbers[evaluation.name if evaluation is not None else "final"][variant.name]
            for metric, value in zip(exp.metrics, expected):
                assert table[metric][0] == pytest.approx(value, rel=1e-6)  # one seed: the mean is the logged value

    # written again from the logs alone, a reader's notes survive
    text = (docs / f"{name}.md").read_text().replace("<!-- end of notes -->", "my note\n<!-- end of notes -->")
    (docs / f"{name}.md").write_text(text)
    assert experiment(["report", name, "--scale", "tiny", "--out", str(out)], main) == 0
    assert "my note" in (docs / f"{name}.md").read_text()
