"""The evaluator's count of non-finite predictions (depthlab.eval.evaluator)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from depthlab.eval import build_protocol, format_table, report_dict
from depthlab.eval.evaluator import Evaluator
from depthlab.models.output import DepthOutput


def _nan_net(bad_pixels: int):
    """A 'network' predicting 2 m everywhere, with NaN in the first ``bad_pixels`` of image 0."""

    def net(image: torch.Tensor) -> DepthOutput:
        depth = torch.full((image.shape[0], 1, *image.shape[-2:]), 2.0)
        depth.view(image.shape[0], -1)[0, :bad_pixels] = math.nan
        return DepthOutput(depth=depth)

    return net


@pytest.mark.parametrize("protocol", ["none", {"name": "none", "median_scaling": True}])
def test_evaluation_reports_and_warns_about_nonfinite_predictions(protocol):
    evaluator = Evaluator(build_protocol(protocol, min_depth=1e-3, max_depth=10.0))
    depth = torch.full((3, 1, 8, 12), 3.0)
    batch = {"image": torch.rand(3, 3, 8, 12), "depth": depth, "valid": torch.ones_like(depth, dtype=torch.bool)}
    evaluator.step("test", batch, _nan_net(5))
    evaluator.step("test", batch, _nan_net(0))
    with pytest.warns(UserWarning, match="5 non-finite depth values .* in 1 images"):
        values = evaluator.compute("test")
    assert float(values["nonfinite_pixels"]) == 5 and float(values["nonfinite_images"]) == 1
    table = format_table(values)
    assert "5 nonfinite_pixels, 1 nonfinite_images" in table and "WARNING" in table
    report = report_dict(values)
    assert report["nonfinite_pixels"] == 5 and report["nonfinite_images"] == 1

    evaluator.step("test", batch, _nan_net(0))  # the counts were reset; a clean network: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = evaluator.compute("test")
    assert float(clean["nonfinite_pixels"]) == 0 and "WARNING" not in format_table(clean)
