"""Prometheus metrics of the aggregator, and the queue-depth gauge."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

AGGREGATION_SECONDS = Histogram(
    "fedgrid_aggregation_seconds",
    "Time one aggregation task took, by task and outcome",
    ["task", "outcome"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
REPORTS = Counter(
    "fedgrid_aggregation_reports_total",
    "Reports folded into checkpoints (used) or left out (excluded)",
    ["outcome"],
)
CYCLES = Counter(
    "fedgrid_aggregation_cycles_total",
    "Aggregation runs by how they ended",
    ["outcome"],
)


class QueueDepthCollector(Collector):
    """Reads the length of the aggregation queue from Redis at each scrape."""

    def __init__(self, broker_url: str, queue: str) -> None:
        self._client = redis.Redis.from_url(broker_url, socket_timeout=2)
        self._queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "fedgrid_aggregation_queue_depth",
            "Aggregation tasks waiting on the queue",
            labels=["queue"],
        )
        try:
            depth = int(self._client.llen(self._queue))
        except redis.RedisError as exc:
            logger.warning("[Aggregator.Metrics] queue depth unavailable: %s", exc)
            return
        gauge.add_metric([self._queue], depth)
        yield gauge


def register_queue_depth(broker_url: str, queue: str) -> None:
    """Expose the queue depth when the broker is Redis."""
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        REGISTRY.register(QueueDepthCollector(broker_url, queue))
