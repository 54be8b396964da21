"""Evaluation protocols (NYU, KITTI, none) and the evaluation report."""

from depthlab.eval.protocols import (
    EvalProtocol,
    Predicted,
    Prepared,
    build_protocol,
    crop_bounds,
    crop_mask,
    resize_prediction,
)
from depthlab.eval.report import format_table, report_dict, write_report

__all__ = [
    "EvalProtocol",
    "Predicted",
    "Prepared",
    "build_protocol",
    "crop_bounds",
    "crop_mask",
    "resize_prediction",
    "format_table",
    "report_dict",
    "write_report",
]
