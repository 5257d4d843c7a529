"""Container health check: `python healthcheck.py SERVICE` exits 0 when healthy."""

from __future__ import annotations

import sys

from fedgrid.config import Settings
from fedgrid.errors import ConfigError
from fedgrid.grpcserver import health_status
from fedgrid.localstack.health import celery_health, http_health

SERVICES = ("model-store", "cycle-manager", "aggregator", "gateway", "signaling")


def check(service: str, settings: Settings) -> str:
    """The health word of one service running in this container."""
    local = "127.0.0.1"
    if service == "model-store":
        return health_status(f"{local}:{settings.model_store_port}")
    if service == "cycle-manager":
        return health_status(f"{local}:{settings.cycle_manager_port}")
    if service == "gateway":
        return http_health(f"http://{local}:{settings.gateway_port}")
    if service == "signaling":
        return http_health(f"http://{local}:{settings.signaling_port}")
    import socket

    node = f"{settings.aggregator_name}@{socket.gethostname()}"
    return celery_health(settings.broker_url, node, timeout=5.0)


def main(argv: list[str]) -> int:
    """Check the service named in argv; print why when it is not healthy."""
    if len(argv) != 1 or argv[0] not in SERVICES:
        print(f"usage: healthcheck.py {{{'|'.join(SERVICES)}}}", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    word = check(argv[0], settings)
    if word in ("SERVING", "ok"):
        return 0
    print(f"unhealthy: {argv[0]} answered {word}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
