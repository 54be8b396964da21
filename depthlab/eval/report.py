"""The evaluation report: one table in the papers' column order, and the same numbers as JSON."""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

from depthlab.metrics import METRIC_NAMES

COUNTS = ("images", "skipped", "nonfinite_pixels", "nonfinite_images")  # integers in the table and JSON


def _number(value: Any) -> float:
    return float(value.item() if hasattr(value, "item") else value)


def format_table(values: Mapping[str, Any], title: str | None = None) -> str:
    """A plain-text table: one header row of METRIC_NAMES, one row of values, then the counts.

    ``values`` holds the nine metrics and optionally ``images``, ``skipped``, ``nonfinite_pixels``,
    ``nonfinite_images``, ``ratio_median``, ``ratio_std``. Non-finite predictions add a line
    saying that the row above counts them clamped.
    """
    width = 9
    header = " ".join(f"{name:>{width}}" for name in METRIC_NAMES)
    row = " ".join(f"{_number(values[name]):>{width}.4f}" for name in METRIC_NAMES)
    lines = [title] if title else []
    lines += [header, row]
    counts = [f"{int(_number(values[k]))} {k}" for k in COUNTS if k in values]
    if "ratio_median" in values:
        median, std = _number(values["ratio_median"]), _number(values["ratio_std"])
        what = "median-scaling" if values.get("align", "median") == "median" else "scale"
        counts.append(f"{what} ratio {median:.3f} (std {std:.3f})")
    if counts:
        lines.append(", ".join(counts))
    if "pose_direction_deg" in values:
        lines.append(f"pose network: direction of travel off by {_number(values['pose_direction_deg']):.2f} degrees (mean)")
    if _number(values.get("nonfinite_pixels", 0)) > 0:
        lines.append(
            "WARNING: the network predicted NaN/inf depth; the metrics above count those pixels clamped "
            "to the depth caps, not as the network's error"
        )
    return "\n".join(lines)


def report_dict(values: Mapping[str, Any], **meta: Any) -> dict[str, Any]:
    """JSON-ready dict: ``metrics`` in METRIC_NAMES order, the other figures, then ``meta``."""
    metrics = {name: _number(values[name]) for name in METRIC_NAMES}
    extra = {k: _number(v) for k, v in values.items() if k not in metrics}
    for key in COUNTS:
        if key in extra and math.isfinite(extra[key]):
            extra[key] = int(extra[key])
    return {"metrics": metrics, **extra, **meta}


def write_report(path: str | os.PathLike, values: Mapping[str, Any], **meta: Any) -> str:
    """Write :func:`report_dict` as JSON to ``path`` (directories created); returns the path."""
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(report_dict(values, **meta), f, indent=2)
        f.write("\n")
    return os.fspath(path)
