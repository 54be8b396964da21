"""The toy problem of ``toy_root_mae``: one weight, one sample, MAE against its square root.

pred = m x with x = 3, y = 6 (so the optimum is m = 2), m starts at 1.9, plain gradient descent
with lr 1e-3 for 300 steps. MAE's gradient is x sign(e) (a constant step of lr x = 0.003); the
root's, d sqrt(|e|)/dm = x sign(e) / (2 sqrt(|e|)), grows without bound as the error e = m x - y
goes to 0, so near the optimum each step overshoots by more than the last error. ``eps`` > 0 is
depthlab's guard (sqrt(|e| + eps), :func:`depthlab.losses.base.safe_sqrt`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from depthlab.experiments.logs import write_csv_scalars
from depthlab.losses.base import safe_sqrt


def descend(loss: str, x: float = 3.0, y: float = 6.0, m0: float = 1.9, lr: float = 1e-3, steps: int = 300,
            eps: float = 0.0) -> list[dict[str, float]]:
    """Plain gradient descent on ``loss`` ("mae" or "root_mae"); one row per step (before its update)."""
    if loss not in ("mae", "root_mae"):
        raise ValueError(f"toy_root_mae: loss must be mae or root_mae, got {loss!r}")
    m = torch.tensor(m0, dtype=torch.float64, requires_grad=True)
    rows = []
    for step in range(steps + 1):
        error = m * x - y
        value = error.abs() if loss == "mae" else safe_sqrt(error.abs(), eps) if eps > 0 else error.abs().sqrt()
        (grad,) = torch.autograd.grad(value, m)
        rows.append({"m": m.item(), "error": error.abs().item(), "loss": value.item(), "grad": grad.abs().item()})
        if step < steps:
            with torch.no_grad():
                m -= lr * grad
    return rows


def run(out_dir: str | Path, seed: int = 0, loss: str = "mae", eps: float = 0.0, steps: int = 300, lr: float = 1e-3,
        m0: float = 1.9, x: float = 3.0, y: float = 6.0) -> None:
    """Write ``metrics.csv``: m, error, loss and |gradient| per step, and the summary tags of the table.

    Deterministic (no random draw), so ``seed`` only names the run."""
    rows = descend(loss, x, y, m0, lr, steps, eps)
    log = [(step, f"train/{key}", value) for step, row in enumerate(rows) for key, value in row.items()]
    late = rows[len(rows) // 2:]  # the second half: after MAE has had time to arrive
    optimum = y / x
    within = next((step for step, row in enumerate(rows) if row["error"] < 0.01 * y), steps + 1)
    summary = {
        "final_error": rows[-1]["error"],
        "late_mean_error": sum(r["error"] for r in late) / len(late),
        "late_max_error": max(r["error"] for r in late),
        "late_m_range": max(r["m"] for r in late) - min(r["m"] for r in late),
        "max_overshoot": max(abs(r["m"] - optimum) for r in late),
        "first_step_within_1pct": within,
    }
    log += [(steps, name, value) for name, value in summary.items()]
    write_csv_scalars(Path(out_dir) / "metrics.csv", log)
