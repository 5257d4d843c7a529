"""Entry point: `python -m fedgrid_model_store` serves the model store."""

from __future__ import annotations

import logging
import sys

from fedgrid.config import Settings
from fedgrid.db import check_schema
from fedgrid.errors import FedgridError
from fedgrid.grpcserver import run_service
from fedgrid.logs import setup_logging
from fedgrid_model_store.server import build_server

logger = logging.getLogger("fedgrid_model_store")


def main() -> int:
    """Serve until SIGTERM; exit 2 with a message when start-up is refused."""
    try:
        settings = Settings.from_env()
    except FedgridError as exc:
        print(f"fedgrid-model-store: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    try:
        check_schema(settings.database_url)
        server = build_server(settings)
    except FedgridError as exc:
        logger.error("[ModelStore] cannot start: %s", exc)
        return 2
    try:
        run_service(server.service, settings.model_store_metrics_port, settings.host)
    finally:
        server.pool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
