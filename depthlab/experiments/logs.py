"""Read a run's own logs: TensorBoard event files (``depthlab fit``/``test``) or ``metrics.csv``.

Reports take every number from here, never from the process that trained: what the report shows
is what anyone can read back from the logs with TensorBoard.
"""

from __future__ import annotations

import csv
from pathlib import Path

Scalars = dict[str, list[tuple[int, float]]]  # tag -> [(step, value)] in step order


def read_event_scalars(folder: str | Path) -> Scalars:
    """Every scalar of every TensorBoard event file under ``folder`` (later files win a repeated step)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, dict[int, float]] = {}
    for path in sorted(Path(folder).rglob("events.out.tfevents.*"), key=lambda p: (p.stat().st_mtime, p.name)):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            series = out.setdefault(tag, {})
            for event in acc.Scalars(tag):
                series[int(event.step)] = float(event.value)
    return {tag: sorted(series.items()) for tag, series in out.items()}


def write_csv_scalars(path: str | Path, rows: list[tuple[int, str, float]]) -> None:
    """``metrics.csv`` of a script experiment: columns step, tag, value (one row per scalar)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "tag", "value"])
        writer.writerows((int(s), t, repr(float(v))) for s, t, v in rows)


def read_csv_scalars(path: str | Path) -> Scalars:
    out: dict[str, dict[int, float]] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or ())
        if "step" not in fields:
            raise ValueError(f"{path}: no 'step' column (expected step, tag, value or Lightning's CSVLogger columns), got {reader.fieldnames}")
        long = {"tag", "value"} <= fields
        for row in reader:
            if long:
                out.setdefault(row["tag"], {})[int(row["step"])] = float(row["value"])
                continue
            for tag, value in row.items():  # Lightning's CSVLogger: one column per metric, blanks between
                if tag not in ("step", "epoch") and value not in ("", None):
                    out.setdefault(tag, {})[int(row["step"])] = float(value)
    return {tag: sorted(series.items()) for tag, series in out.items()}


def read_scalars(folder: str | Path) -> Scalars:
    """Event files and ``metrics.csv`` files under ``folder``, merged."""
    scalars = read_event_scalars(folder)
    for path in sorted(Path(folder).rglob("metrics.csv")):
        for tag, series in read_csv_scalars(path).items():
            merged = dict(scalars.get(tag, []))
            merged.update(series)
            scalars[tag] = sorted(merged.items())
    return scalars


def last_value(scalars: Scalars, tag: str) -> float | None:
    series = scalars.get(tag)
    return series[-1][1] if series else None
