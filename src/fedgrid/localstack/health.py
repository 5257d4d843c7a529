"""Health checks of the five services, each by its own protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests

from fedgrid.grpcserver import health_status

if TYPE_CHECKING:
    from fedgrid.localstack.supervisor import StackInfo


def http_health(url: str, timeout: float = 2.0) -> str:
    """'ok' when GET url/healthz answers 200, otherwise why not."""
    try:
        reply = requests.get(f"{url}/healthz", timeout=timeout)
    except requests.RequestException:
        return "UNREACHABLE"
    return "ok" if reply.status_code == 200 else f"HTTP {reply.status_code}"


def celery_health(broker_url: str, node: str, timeout: float = 1.0) -> str:
    """'ok' when the Celery node answers `inspect ping` on the broker."""
    from celery import Celery

    app = Celery(broker=broker_url)
    try:
        replies = app.control.ping(destination=[node], timeout=timeout) or []
    except Exception:  # kombu raises many connection error types
        return "UNREACHABLE"
    finally:
        app.close()
    return "ok" if any(node in reply for reply in replies) else "NO REPLY"


def service_health(info: StackInfo) -> dict[str, str]:
    """The health word of every service of a stack."""
    env = info.settings_env
    broker = env.get("FEDGRID_BROKER_URL", info.redis_url)
    node = env.get("FEDGRID_AGGREGATOR_NAME", "fedgrid-aggregator")
    signaling_http = info.signaling_url.replace("ws://", "http://", 1)
    return {
        "model-store": health_status(info.model_store_address),
        "cycle-manager": health_status(info.cycle_manager_address),
        "aggregator": celery_health(broker, f"{node}@{_hostname()}"),
        "gateway": http_health(info.gateway_url),
        "signaling": http_health(signaling_http),
    }


def _hostname() -> str:
    import socket

    return socket.gethostname()
