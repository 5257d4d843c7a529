"""`python -m fedgrid_gateway`: serve the gateway with gunicorn's gthread workers."""

from __future__ import annotations

import logging
import sys
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from fedgrid.config import Settings
from fedgrid.errors import ConfigError
from fedgrid.logs import setup_logging
from fedgrid_gateway.app import build_app

logger = logging.getLogger(__name__)


class GatewayServer(BaseApplication):  # type: ignore[misc]
    """gunicorn serving one already-built app; settings come from fedgrid's own."""

    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._app


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """gunicorn settings for the gateway: gthread workers on host:gateway_port."""
    return {
        "bind": f"{settings.host}:{settings.gateway_port}",
        "worker_class": "gthread",
        "workers": settings.gateway_workers,
        "threads": settings.gateway_threads,
        "timeout": 120,
        "graceful_timeout": 20,
        "keepalive": 5,
        "accesslog": None,
        "loglevel": settings.log_level.lower(),
    }


def main() -> int:
    """Validate settings, build the app, and serve until SIGTERM."""
    try:
        settings = Settings.from_env()
        setup_logging(settings.log_level, settings.log_format)
        app = build_app(settings)
    except ConfigError as exc:
        print(f"fedgrid gateway: {exc}", file=sys.stderr)
        return 2
    logger.info(
        "[Gateway] starting bind=%s:%s workers=%s threads=%s",
        settings.host,
        settings.gateway_port,
        settings.gateway_workers,
        settings.gateway_threads,
    )
    GatewayServer(app, gunicorn_options(settings)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
