"""depthlab/experiments/logs.py: reading the runs' CSV logs."""

from __future__ import annotations

import pytest

from depthlab.experiments.logs import read_csv_scalars, write_csv_scalars


def test_csv_logs_both_layouts(tmp_path):
    write_csv_scalars(tmp_path / "m.csv", [(0, "train/m", 1.9), (1, "train/m", 1.903), (1, "final", 0.25)])
    assert read_csv_scalars(tmp_path / "m.csv") == {"train/m": [(0, 1.9), (1, 1.903)], "final": [(1, 0.25)]}
    (tmp_path / "wide.csv").write_text("epoch,step,train/loss,val/abs_rel\n0,9,0.5,\n0,19,0.4,0.3\n")
    assert read_csv_scalars(tmp_path / "wide.csv") == {"train/loss": [(9, 0.5), (19, 0.4)], "val/abs_rel": [(19, 0.3)]}
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv: no 'step' column"):
        read_csv_scalars(tmp_path / "bad.csv")
