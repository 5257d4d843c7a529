"""Aggregating a closed cycle: reports in, one checkpoint out, exactly once."""

from fedgrid.aggregation.cycle import CycleAggregator, Outcome
from fedgrid.aggregation.sharding import Shard, split
from fedgrid.aggregation.sources import report_inputs, strip_report_frame

__all__ = [
    "CycleAggregator",
    "Outcome",
    "Shard",
    "report_inputs",
    "split",
    "strip_report_frame",
]
