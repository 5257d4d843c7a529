"""Prometheus metrics of one gateway process, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class GatewayMetrics:
    """Requests by route and status, reports by outcome, cycle decisions."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fedgrid_gateway_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fedgrid_gateway_request_seconds",
            "Time to the start of the response, by route",
            ["route"],
            registry=self.registry,
        )
        self.reports = Counter(
            "fedgrid_gateway_reports",
            "Reports by outcome (accepted or the reason for refusal)",
            ["outcome"],
            registry=self.registry,
        )
        self.cycle_requests = Counter(
            "fedgrid_gateway_cycle_requests",
            "Cycle requests by outcome (accepted, rejected, finished) and reason",
            ["outcome", "reason"],
            registry=self.registry,
        )
