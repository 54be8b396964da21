"""Evaluation protocols (NYU, KITTI, none) and the evaluation report."""

from depthlab.eval.protocols import EvalProtocol, Prepared, build_protocol, crop_bounds, crop_mask
from depthlab.eval.report import format_table, report_dict, write_report

__all__ = [
    "EvalProtocol",
    "Prepared",
    "build_protocol",
    "crop_bounds",
    "crop_mask",
    "format_table",
    "report_dict",
    "write_report",
]
