"""Durable cycle history in PostgreSQL: jobs, cycles, assignments, reports."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2.extras import Json, execute_values

from fedgrid.db import Pool
from fedgrid.errors import StorageError

# States only move forward (open, closing, then completed or failed), so a
# late write of an older snapshot loses.
_UPSERT_CYCLE = """
INSERT INTO cycles AS c (cycle_id, job_id, number, state, trained_from_checkpoint,
    admitted, reports, opened_at, deadline, closed_at, checkpoint_number,
    close_reason)
VALUES (%(cycle_id)s, %(job_id)s, %(number)s, %(state)s, %(trained_from)s,
    %(admitted)s, %(reports)s, %(opened_at)s, %(deadline)s, %(closed_at)s,
    %(checkpoint)s, %(close_reason)s)
ON CONFLICT (cycle_id) DO UPDATE SET
    admitted = GREATEST(c.admitted, EXCLUDED.admitted),
    reports = GREATEST(c.reports, EXCLUDED.reports),
    checkpoint_number = GREATEST(c.checkpoint_number, EXCLUDED.checkpoint_number),
    state = CASE WHEN cycle_state_rank(EXCLUDED.state) > cycle_state_rank(c.state)
        THEN EXCLUDED.state ELSE c.state END,
    close_reason = CASE
        WHEN cycle_state_rank(EXCLUDED.state) > cycle_state_rank(c.state)
        THEN EXCLUDED.close_reason ELSE c.close_reason END,
    closed_at = COALESCE(c.closed_at, EXCLUDED.closed_at)
"""

_UPSERT_JOB_STATE = """
UPDATE cycle_jobs SET
    completed_cycles = GREATEST(completed_cycles, %(completed)s),
    state = CASE WHEN %(state)s = 'finished' THEN 'finished' ELSE state END,
    finish_reason = CASE WHEN state = 'finished' THEN finish_reason
        ELSE %(finish_reason)s END,
    finished_at = CASE WHEN %(state)s = 'finished'
        THEN COALESCE(finished_at, now()) ELSE finished_at END
WHERE job_id = %(job_id)s
"""

_CYCLE_COLUMNS = (
    "cycle_id, job_id, number, state, trained_from_checkpoint, admitted, reports, "
    "opened_at, deadline, closed_at, checkpoint_number, close_reason"
)


def cycle_row(cycle_id: str, live: Mapping[str, str]) -> dict[str, Any]:
    """The columns of a cycle from its live Redis fields."""
    closed_at = live.get("closed_at") or None
    return {
        "cycle_id": cycle_id,
        "job_id": live["job_id"],
        "number": int(live["number"]),
        "state": live["state"],
        "trained_from": int(float(live["trained_from"])),
        "admitted": int(live.get("admitted") or 0),
        "reports": int(live.get("reports") or 0),
        "opened_at": float(live["opened_at"]),
        "deadline": float(live["deadline"]),
        "closed_at": float(closed_at) if closed_at else None,
        "checkpoint": int(float(live.get("checkpoint") or 0)),
        "close_reason": live.get("close_reason", ""),
    }


class History:
    """Reads and writes the cycle manager's tables through a connection pool."""

    def __init__(self, database_url: str, connections: int = 8) -> None:
        self._pool = Pool(database_url, maxconn=connections)
        # The pool raises when exhausted; callers wait for a connection instead.
        self._slots = threading.BoundedSemaphore(connections)

    @contextmanager
    def _cursor(self, what: str) -> Iterator[psycopg2.extensions.cursor]:
        with self._slots:
            try:
                with self._pool.cursor() as cur:
                    yield cur
            except psycopg2.Error as exc:
                raise StorageError(
                    f"PostgreSQL failed while {what}: {exc}".strip()
                ) from exc

    def save_job(
        self, job_id: str, name: str, version: str, config: dict[str, Any]
    ) -> None:
        """Record a job once; a second registration keeps the first row."""
        with self._cursor("saving a job") as cur:
            cur.execute(
                "INSERT INTO cycle_jobs (job_id, name, version, server_config) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (job_id) DO NOTHING",
                (job_id, name, version, Json(config)),
            )

    def save_job_state(self, job_id: str, live: Mapping[str, str]) -> None:
        """Copy a job's live state and completed count; finishing is final."""
        with self._cursor("saving job state") as cur:
            cur.execute(
                _UPSERT_JOB_STATE,
                {
                    "job_id": job_id,
                    "state": live.get("state", "running"),
                    "finish_reason": live.get("finish_reason", ""),
                    "completed": int(live.get("completed") or 0),
                },
            )

    def save_cycle(self, cycle_id: str, live: Mapping[str, str]) -> None:
        """Upsert a cycle from its live fields; counts and states never go back."""
        with self._cursor("saving a cycle") as cur:
            cur.execute(_UPSERT_CYCLE, cycle_row(cycle_id, live))

    def save_assignments(
        self, cycle_id: str, live: Mapping[str, str], workers: Mapping[str, str]
    ) -> None:
        """Record admitted workers (worker id -> request key) with their cycle."""
        with self._cursor("saving assignments") as cur:
            cur.execute(_UPSERT_CYCLE, cycle_row(cycle_id, live))
            execute_values(
                cur,
                "INSERT INTO cycle_assignments (request_key, cycle_id, worker_id) "
                "VALUES %s ON CONFLICT (request_key) DO NOTHING",
                [(key, cycle_id, worker) for worker, key in workers.items()],
            )

    def save_reports(
        self,
        cycle_id: str,
        live: Mapping[str, str],
        reports: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """Record accepted reports (request key -> metadata) with their cycle."""
        rows = [
            (
                key,
                cycle_id,
                meta["worker_id"],
                int(meta["sample_count"]),
                Json(meta.get("metrics") or {}),
                meta["diff_object_key"],
                int(meta["diff_size"]),
                meta["diff_digest"],
                float(meta["accepted_at"]),
            )
            for key, meta in reports.items()
        ]
        with self._cursor("saving reports") as cur:
            cur.execute(_UPSERT_CYCLE, cycle_row(cycle_id, live))
            execute_values(
                cur,
                "INSERT INTO cycle_reports (request_key, cycle_id, worker_id, "
                "sample_count, metrics, diff_object_key, diff_size, diff_digest, "
                "accepted_at) VALUES %s ON CONFLICT (request_key) DO NOTHING",
                rows,
            )

    def job(self, job_id: str) -> dict[str, Any] | None:
        """A job's row, or None."""
        with self._cursor("reading a job") as cur:
            cur.execute(
                "SELECT job_id, name, version, server_config, state, finish_reason, "
                "completed_cycles FROM cycle_jobs WHERE job_id = %s",
                (job_id,),
            )
            row = cur.fetchone()
            names = [column[0] for column in cur.description or ()]
        return dict(zip(names, row, strict=True)) if row else None

    def cycles(self, job_id: str) -> list[dict[str, Any]]:
        """Every cycle of a job, oldest first."""
        return self._cycles("job_id = %s ORDER BY number", job_id)

    def cycle(self, cycle_id: str) -> dict[str, Any] | None:
        """One cycle's row, or None."""
        found = self._cycles("cycle_id = %s", cycle_id)
        return found[0] if found else None

    def _cycles(self, where: str, value: str) -> list[dict[str, Any]]:
        with self._cursor("reading cycles") as cur:
            query = f"SELECT {_CYCLE_COLUMNS} FROM cycles WHERE {where}"  # noqa: S608
            cur.execute(query, (value,))
            rows = cur.fetchall()
            names = [column[0] for column in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def reports(self, cycle_id: str) -> list[dict[str, Any]]:
        """Accepted reports of a cycle in the order they arrived."""
        with self._cursor("reading reports") as cur:
            cur.execute(
                "SELECT request_key, worker_id, sample_count, metrics, "
                "diff_object_key, diff_size, diff_digest FROM cycle_reports "
                "WHERE cycle_id = %s ORDER BY accepted_at, request_key",
                (cycle_id,),
            )
            rows = cur.fetchall()
            names = [column[0] for column in cur.description or ()]
        found = [dict(zip(names, row, strict=True)) for row in rows]
        for report in found:
            if isinstance(report["metrics"], str):
                report["metrics"] = json.loads(report["metrics"])
        return found

    def close(self) -> None:
        """Close every connection."""
        self._pool.close()
