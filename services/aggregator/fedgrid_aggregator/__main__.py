"""`python -m fedgrid_aggregator`: a Celery worker on the aggregation queue."""

from __future__ import annotations

import logging
import sys

from prometheus_client import start_http_server

from fedgrid.config import Settings
from fedgrid.errors import ConfigError
from fedgrid.logs import setup_logging
from fedgrid_aggregator.app import create_app
from fedgrid_aggregator.metrics import register_queue_depth

logger = logging.getLogger(__name__)


def worker_arguments(settings: Settings) -> list[str]:
    """The `celery worker` command line for these settings."""
    return [
        "worker",
        "--queues",
        settings.aggregation_queue,
        # Threads share one process, its metrics and its gRPC channels; the
        # heavy work is in torch and I/O, which release the GIL.
        "--pool",
        "threads",
        "--concurrency",
        str(settings.aggregator_concurrency),
        "--hostname",
        f"{settings.aggregator_name}@%h",
        "--loglevel",
        settings.log_level,
        "--without-gossip",
        "--without-mingle",
    ]


def main() -> None:
    """Read settings, serve metrics and run the worker until it is stopped."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        sys.exit(f"fedgrid-aggregator: {exc}")
    setup_logging(settings.log_level, settings.log_format)
    if settings.aggregator_test_hold_file:
        logger.warning("[Aggregator] test-only hold file is set; not for production")
    app = create_app(settings)
    register_queue_depth(settings.broker_url, settings.aggregation_queue)
    start_http_server(settings.aggregator_metrics_port, addr=settings.host)
    logger.info(
        "[Aggregator] starting queue=%s metrics_port=%s",
        settings.aggregation_queue,
        settings.aggregator_metrics_port,
    )
    app.worker_main(worker_arguments(settings))


if __name__ == "__main__":
    main()
