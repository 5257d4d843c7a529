"""Sending a closed cycle's aggregation to the Celery queue, by task name."""

from __future__ import annotations

import threading

import celery
import kombu.exceptions

from fedgrid.errors import Unavailable

AGGREGATE_TASK = "fedgrid.aggregate_cycle"


class CeleryEnqueuer:
    """Sends `fedgrid.aggregate_cycle` with JSON kwargs; never imports the task."""

    def __init__(self, broker_url: str, queue: str) -> None:
        self.queue = queue
        self._app = celery.Celery("fedgrid-cycle-manager", broker=broker_url)
        self._app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            broker_connection_retry_on_startup=True,
        )
        self._lock = threading.Lock()

    def __call__(self, job_id: str, cycle_id: str, checkpoint_number: int) -> None:
        """Enqueue one aggregation of cycle_id, trained from checkpoint_number."""
        kwargs = {
            "job_id": job_id,
            "cycle_id": cycle_id,
            "checkpoint_number": checkpoint_number,
        }
        try:
            with self._lock:
                self._app.send_task(
                    AGGREGATE_TASK,
                    kwargs=kwargs,
                    queue=self.queue,
                    serializer="json",
                    retry=True,
                    retry_policy={"max_retries": 3, "interval_start": 0.2},
                )
        except (kombu.exceptions.KombuError, OSError) as exc:
            raise Unavailable(
                f"cannot enqueue the aggregation of cycle {cycle_id}: {exc}"
            ) from exc

    def close(self) -> None:
        """Release broker connections."""
        self._app.close()
