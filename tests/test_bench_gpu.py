"""benchmarks/bench_gpu.py, the prepared GPU check, on its CPU code path at tiny size.

The GPU run itself happens only on a lent machine (docs/gpu.md); here: every row it writes is either
measured (a finite, positive rate) or skipped with its reason, the decisions taken for the CPU are the
stated ones, the table shows every row, and the step timer counts the steps it says.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import bench_gpu  # noqa: E402



@pytest.fixture(autouse=True)
def _loggers_restored():
    """bench_gpu.quiet() raises Lightning's and depthlab's log levels for the benchmark's table; put
    them back, or every later test in this process would log nothing (caplog tests fail)."""
    import logging

    names = ("lightning.pytorch", "lightning.fabric", "depthlab")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


NETWORKS = ("unet_r18", "unet_r50", "da_v2_small")
EAGER = ("32-true", "bf16-mixed", "bf16-mixed guard off", "bf16-mixed channels_last")


def test_step_timer_counts_the_steps_after_the_warm_up() -> None:
    timer = bench_gpu.StepTimer("cpu", warmup=2, steps=3)
    trainer = SimpleNamespace(should_stop=False)
    timer.started = 0.0
    for _ in range(4):
        timer.on_step_end(trainer)
    assert timer.measured is None and not trainer.should_stop  # 2 warm-up + 2 timed
    timer.on_step_end(trainer)
    assert timer.measured is not None and timer.measured[0] == 3 and timer.measured[1] > 0 and trainer.should_stop
    timer.on_step_end(trainer)  # a step after the stop changes nothing
    assert timer.measured[0] == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where there is no CUDA device")
def test_cuda_asked_without_a_device_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_gpu.main(["--device", "cuda", "--json", ""])
    assert exc.value.code == 2 and "--device cuda: torch sees no CUDA device" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_cpu_run_measures_or_explains_every_row(tmp_path: Path) -> None:
    out, table = tmp_path / "bench_gpu.json", tmp_path / "bench_gpu.md"
    assert bench_gpu.main(["--tiny", "--json", str(out), "--table", str(table)]) == 0
    data = json.loads(out.read_text())
    assert data["device"] == "cpu" and data["settings"]["tiny"] and data["total_s"] > 0
    assert {"torch", "lightning", "transformers", "cpus"} <= set(data["environment"])
    rows = {r["name"]: r for r in data["rows"]}
    assert len(rows) == len(data["rows"])  # names are unique

    train = {f"{net} {variant}" for net in NETWORKS for variant in (*EAGER, "bf16-mixed compile")}
    assert train == {n for n, r in rows.items() if r["section"] == "train"}
    assert [r["workers"] for r in data["rows"] if r["section"] == "loader"] == [1]
    assert [r["section"] for r in data["rows"]].count("loader_fit") == 1
    assert [r["section"] for r in data["rows"]].count("ddp") == 1

    for name, row in rows.items():
        if row["status"] == "ok":
            assert math.isfinite(row["images_per_s"]) and row["images_per_s"] > 0, name
            assert row["steps"] >= 1 and row["seconds"] > 0 and row["ms_per_step"] > 0, name
            # images/s is what it says: images per step x steps / seconds
            per_step = row["batch"] * (row["devices"] or 1) if row["section"] != "loader" else None
            if per_step is not None:
                assert row["images_per_s"] == pytest.approx(per_step * row["steps"] / row["seconds"]), name
        else:
            assert row["status"] == "skipped" and row["reason"], name  # never "failed"
    # On the CPU: everything runs but torch.compile (minutes of C++) and DDP (one device)
    skipped = {n for n, r in rows.items() if r["status"] == "skipped"}
    ddp = next(n for n, r in rows.items() if r["section"] == "ddp")
    assert skipped == {f"{net} bf16-mixed compile" for net in NETWORKS} | {ddp}
    assert all("CPU" in rows[n]["reason"] for n in skipped)
    assert rows[f"unet_r50 bf16-mixed guard off"]["guard"] is False and rows["unet_r50 bf16-mixed"]["guard"] is True
    loader = [r for r in data["rows"] if r["section"] == "loader"]
    for r in loader:
        assert r["extra"]["images_per_s_per_worker"] == pytest.approx(r["images_per_s"] / r["workers"])
    vs = {v["network"]: v for v in data["loader_vs_gpu"]}
    assert set(vs) == set(NETWORKS)
    per_worker = loader[0]["images_per_s"]
    for v in vs.values():
        assert v["workers_estimated"] == math.ceil(v["gpu_images_per_s"] / per_worker)

    text = table.read_text()
    assert all(name in text for name in rows) and "TINY sizes" in text
    # --from_json (run_gpu.sh's fallback after a timeout) prints the same rows
    again = tmp_path / "again.md"
    assert bench_gpu.main(["--from_json", str(out), "--table", str(again)]) == 0
    assert again.read_text().splitlines()[1:] == text.splitlines()[1:]
    for script in ("run_gpu.sh", "gpu_wheels.sh"):
        assert subprocess.run(["bash", "-n", str(BENCHMARKS / script)]).returncode == 0, script
