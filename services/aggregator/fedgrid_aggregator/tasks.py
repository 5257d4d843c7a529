"""The Celery tasks: thin wrappers that call fedgrid.aggregation."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from celery import Celery, Task, chord

from fedgrid.aggregation import CycleAggregator, Outcome, Shard
from fedgrid.config import Settings
from fedgrid.cycles.client import CycleManagerClient
from fedgrid.errors import StorageError, Unavailable
from fedgrid.modelstore.client import ModelStoreClient
from fedgrid.objectstore import object_store_from_settings
from fedgrid.secagg.rounds import SecAggRounds
from fedgrid_aggregator.hold import hold_while_file_exists
from fedgrid_aggregator.metrics import AGGREGATION_SECONDS, CYCLES, REPORTS

logger = logging.getLogger(__name__)

AGGREGATE_TASK = "fedgrid.aggregate_cycle"
SHARD_TASK = "fedgrid.aggregate_shard"
COMBINE_TASK = "fedgrid.combine_shards"
UNMASK_PART_TASK = "fedgrid.unmask_part"
COMBINE_MASKS_TASK = "fedgrid.combine_masks"
# Failures a later attempt may not meet: a service down, a partial sum late.
RETRYABLE = (Unavailable, StorageError)
MAX_RETRIES = 8
MAX_BACKOFF_SECONDS = 60
TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": MAX_RETRIES,
}


class Runtime:
    """Clients one worker process shares between its tasks, made on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._aggregator: CycleAggregator | None = None

    def aggregator(self) -> CycleAggregator:
        with self._lock:
            if self._aggregator is None:
                settings = self.settings
                self._aggregator = CycleAggregator(
                    models=ModelStoreClient(
                        settings.model_store_address, chunk_bytes=settings.chunk_bytes
                    ),
                    cycles=CycleManagerClient(settings.cycle_manager_address),
                    objects=object_store_from_settings(settings),
                    chunk_bytes=settings.chunk_bytes,
                    max_report_bytes=settings.max_report_bytes,
                    hold=hold_while_file_exists(settings.aggregator_test_hold_file),
                    rounds=SecAggRounds(settings.redis_url, settings.redis_prefix),
                )
            return self._aggregator


def _run(
    task: Task[Any, Any], name: str, cycle_id: str, step: Callable[[], Outcome]
) -> Outcome:
    """Time a step, count its outcome, and retry it when a service is down."""
    started = time.monotonic()
    try:
        outcome = step()
    except RETRYABLE as exc:
        retries = task.request.retries
        if retries >= MAX_RETRIES:
            raise
        countdown = min(MAX_BACKOFF_SECONDS, 2**retries)
        logger.warning(
            "[Aggregator.%s] cycle=%s retry=%d in=%ss reason=%s",
            name,
            cycle_id,
            retries + 1,
            countdown,
            exc,
        )
        raise task.retry(exc=exc, countdown=countdown) from exc
    AGGREGATION_SECONDS.labels(name, outcome.status).observe(time.monotonic() - started)
    CYCLES.labels(outcome.status).inc()
    if outcome.status in ("stored", "summed"):
        REPORTS.labels("used").inc(outcome.reports_used)
        REPORTS.labels("excluded").inc(outcome.reports_excluded)
    return outcome


def _result(outcome: Outcome) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "checkpoint_number": outcome.checkpoint_number,
        "reason": outcome.reason,
        "reports_used": outcome.reports_used,
        "reports_excluded": outcome.reports_excluded,
        "shards": len(outcome.shards),
        "mask_parts": len(outcome.mask_parts),
    }


def register_tasks(app: Celery, settings: Settings) -> None:
    """Define the aggregator's tasks on app, by their public names."""
    runtime = Runtime(settings)
    queue = settings.aggregation_queue

    @app.task(name=SHARD_TASK, **TASK_OPTIONS)
    def aggregate_shard(
        self: Task[Any, Any],
        job_id: str,
        cycle_id: str,
        checkpoint_number: int,
        index: int,
        start: int,
        stop: int,
    ) -> dict[str, Any]:
        shard = Shard(index, start, stop)
        return _result(
            _run(
                self,
                "SumShard",
                cycle_id,
                lambda: runtime.aggregator().sum_shard(
                    job_id, cycle_id, checkpoint_number, shard
                ),
            )
        )

    @app.task(name=COMBINE_TASK, **TASK_OPTIONS)
    def combine_shards(
        self: Task[Any, Any],
        job_id: str,
        cycle_id: str,
        checkpoint_number: int,
        shard_count: int,
    ) -> dict[str, Any]:
        return _result(
            _run(
                self,
                "Combine",
                cycle_id,
                lambda: runtime.aggregator().combine(
                    job_id, cycle_id, checkpoint_number, shard_count
                ),
            )
        )

    @app.task(name=UNMASK_PART_TASK, **TASK_OPTIONS)
    def unmask_part(
        self: Task[Any, Any],
        job_id: str,
        cycle_id: str,
        index: int,
        jobs: list[list[Any]],
        words: int,
    ) -> dict[str, Any]:
        return _result(
            _run(
                self,
                "UnmaskPart",
                cycle_id,
                lambda: runtime.aggregator().unmask_part(
                    job_id, cycle_id, index, jobs, words
                ),
            )
        )

    @app.task(name=COMBINE_MASKS_TASK, **TASK_OPTIONS)
    def combine_masks(
        self: Task[Any, Any],
        job_id: str,
        cycle_id: str,
        checkpoint_number: int,
        parts: int,
    ) -> dict[str, Any]:
        return _result(
            _run(
                self,
                "CombineMasks",
                cycle_id,
                lambda: runtime.aggregator().combine_masks(
                    job_id, cycle_id, checkpoint_number, parts
                ),
            )
        )

    def split_unmasking(
        job_id: str, cycle_id: str, checkpoint_number: int, outcome: Outcome
    ) -> None:
        header = [
            unmask_part.signature(
                kwargs={
                    "job_id": job_id,
                    "cycle_id": cycle_id,
                    "index": index,
                    "jobs": jobs,
                    "words": outcome.mask_words,
                },
                queue=queue,
            )
            for index, jobs in enumerate(outcome.mask_parts)
        ]
        callback = combine_masks.signature(
            kwargs={
                "job_id": job_id,
                "cycle_id": cycle_id,
                "checkpoint_number": checkpoint_number,
                "parts": len(outcome.mask_parts),
            },
            queue=queue,
            immutable=True,
        )
        chord(header)(callback)

    @app.task(name=AGGREGATE_TASK, **TASK_OPTIONS)
    def aggregate_cycle(
        self: Task[Any, Any], job_id: str, cycle_id: str, checkpoint_number: int
    ) -> dict[str, Any]:
        outcome = _run(
            self,
            "Aggregate",
            cycle_id,
            lambda: runtime.aggregator().aggregate(job_id, cycle_id, checkpoint_number),
        )
        if outcome.shards:
            header = [
                aggregate_shard.signature(
                    kwargs={
                        "job_id": job_id,
                        "cycle_id": cycle_id,
                        "checkpoint_number": checkpoint_number,
                        "index": shard.index,
                        "start": shard.start,
                        "stop": shard.stop,
                    },
                    queue=queue,
                )
                for shard in outcome.shards
            ]
            callback = combine_shards.signature(
                kwargs={
                    "job_id": job_id,
                    "cycle_id": cycle_id,
                    "checkpoint_number": checkpoint_number,
                    "shard_count": len(outcome.shards),
                },
                queue=queue,
                immutable=True,
            )
            chord(header)(callback)
        if outcome.mask_parts:
            split_unmasking(job_id, cycle_id, checkpoint_number, outcome)
        return _result(outcome)
