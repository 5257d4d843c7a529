"""Prometheus metrics of the signaling service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTIONS = Gauge("fedgrid_signaling_connections", "Open signaling connections")
JOINS = Counter("fedgrid_signaling_joins_total", "Room joins by outcome", ["outcome"])
RELAYED = Counter(
    "fedgrid_signaling_relayed_total", "Frames relayed to a peer, by type", ["type"]
)
ERRORS = Counter(
    "fedgrid_signaling_errors_total", "Error frames sent to workers, by code", ["code"]
)
DEPARTURES = Counter(
    "fedgrid_signaling_departures_total",
    "Peers that left a room, by how: closed or expired",
    ["how"],
)
