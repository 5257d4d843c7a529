"""The aggregator's Celery app, built from Settings: Redis broker, JSON only."""

from __future__ import annotations

from celery import Celery

from fedgrid.config import Settings

RESULT_EXPIRES_SECONDS = 24 * 3600


def redelivery_options(visibility_timeout: int) -> dict[str, int]:
    """Redis transport options that hand a dead worker's task to another one.

    kombu scans for tasks left unacknowledged longer than the visibility
    timeout only every interval x throttle seconds (100 s by default); scan
    at least every 10 s, and twice per timeout when the timeout is short.
    """
    return {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": max(1, min(10, visibility_timeout // 2)),
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": max(5, min(300, visibility_timeout)),
    }


def create_app(settings: Settings) -> Celery:
    """A Celery app on settings' broker and queue, with its tasks registered."""
    app = Celery("fedgrid-aggregator", broker=settings.broker_url)
    app.conf.update(
        result_backend=settings.redis_url,
        result_expires=RESULT_EXPIRES_SECONDS,
        task_default_queue=settings.aggregation_queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # A task is acknowledged only when it ends, and a task whose worker
        # died is handed out again: with idempotent checkpoints, that makes
        # each aggregation happen exactly once.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=redelivery_options(
            settings.aggregation_visibility_timeout
        ),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    from fedgrid_aggregator.tasks import register_tasks

    register_tasks(app, settings)
    return app
