"""Averaging of model diffs: streaming sums, server optimizers, robust means."""

from fedgrid.averaging.accumulate import ReportInput, Tally, WeightedSum
from fedgrid.averaging.diffs import DiffBuffer, ParsedDiff, parse_diff
from fedgrid.averaging.engine import AveragingResult, average, finish_linear
from fedgrid.averaging.errors import AveragingFailed, DiffRejected
from fedgrid.averaging.layout import ModelLayout

__all__ = [
    "AveragingFailed",
    "AveragingResult",
    "DiffBuffer",
    "DiffRejected",
    "ModelLayout",
    "ParsedDiff",
    "ReportInput",
    "Tally",
    "WeightedSum",
    "average",
    "finish_linear",
    "parse_diff",
]
