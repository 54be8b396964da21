"""depthlab/experiments/toy.py: the toy problem's first steps by hand."""

from __future__ import annotations

import math

import pytest


def test_toy_first_steps_by_hand():
    from depthlab.experiments.toy import descend

    mae = descend("mae", steps=2)
    root = descend("root_mae", steps=1)
    # e = 1.9 * 3 - 6 = -0.3; MAE's gradient is x sign(e) = -3, so m moves up by lr x = 0.003
    assert mae[0]["error"] == pytest.approx(0.3) and mae[0]["grad"] == pytest.approx(3.0)
    assert mae[1]["m"] == pytest.approx(1.903) and mae[2]["m"] == pytest.approx(1.906)
    # root: |d sqrt(|e|)/dm| = x / (2 sqrt(|e|)) = 3 / (2 sqrt(0.3))
    assert root[0]["grad"] == pytest.approx(3 / (2 * math.sqrt(0.3)))
    assert root[1]["m"] == pytest.approx(1.9 + 1e-3 * 3 / (2 * math.sqrt(0.3)))
    with pytest.raises(ValueError, match="loss must be mae or root_mae"):
        descend("mse")
