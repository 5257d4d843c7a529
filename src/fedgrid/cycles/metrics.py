"""Prometheus metrics of the cycle manager, recorded by the library code."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ADMISSIONS = Counter(
    "fedgrid_cycle_admissions_total",
    "Cycle requests answered, by outcome (accepted or the rejection reason).",
    ["outcome"],
)
REPORTS = Counter(
    "fedgrid_cycle_reports_total",
    "Reports answered, by outcome (ACCEPTED or the refusal status).",
    ["outcome"],
)
CYCLES_CLOSED = Counter(
    "fedgrid_cycles_closed_total",
    "Cycles that ended, by final state (completed or failed).",
    ["state"],
)
CYCLE_SECONDS = Histogram(
    "fedgrid_cycle_duration_seconds",
    "Seconds from a cycle's opening to its close.",
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)
AGGREGATIONS_ENQUEUED = Counter(
    "fedgrid_cycle_aggregations_enqueued_total",
    "Aggregation tasks sent, first sends and re-sends of quiet cycles.",
    ["kind"],
)
OPEN_CYCLES = Gauge(
    "fedgrid_open_cycles",
    "Cycles open for admission right now, across all replicas.",
)
