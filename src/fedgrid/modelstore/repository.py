"""SQL for the model store's metadata in PostgreSQL."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2.extras import Json

from fedgrid.db import Pool
from fedgrid.errors import AlreadyExists, NotFound, StorageError
from fedgrid.modelstore.names import LATEST, version_key
from fedgrid.modelstore.records import (
    BlobRecord,
    CheckpointRecord,
    JobHeader,
    JobRecord,
)

logger = logging.getLogger(__name__)

Cursor = psycopg2.extensions.cursor


def _job(row: Sequence[Any]) -> JobRecord:
    plans: dict[str, list[str]] = {}
    for name, plan_format in row[7]:
        plans.setdefault(name, []).append(plan_format)
    return JobRecord(
        id=row[0],
        name=row[1],
        version=row[2],
        client_config=row[3],
        server_config=row[4],
        averaging_plan=row[5],
        created_at=row[6],
        plans=plans,
        protocols=list(row[8]),
        latest_checkpoint=int(row[9]),
    )


def _checkpoint(row: Sequence[Any]) -> CheckpointRecord:
    return CheckpointRecord(
        id=row[0],
        job_id=row[1],
        number=int(row[2]),
        blob=BlobRecord(object_key=row[3], digest=row[4], size=int(row[5])),
        created_at=row[6],
        metrics={str(k): float(v) for k, v in row[7].items()},
        cycle_id=row[8],
        aliases=tuple(row[9]),
    )


class Repository:
    """Every query the model store runs; psycopg2 errors become StorageError."""

    def __init__(self, pool: Pool, max_connections: int = 8) -> None:
        self._pool = pool
        # The pool refuses rather than waits when it is exhausted; queue here.
        self._slots = threading.BoundedSemaphore(max_connections)

    @contextmanager
    def _cursor(self) -> Iterator[Cursor]:
        with self._slots:
            try:
                with self._pool.cursor() as cur:
                    yield cur
            except psycopg2.Error as exc:
                raise StorageError(
                    f"model store database error: {exc}".strip()
                ) from exc

    # --- jobs ----------------------------------------------------------

    def job_exists(self, name: str, version: str) -> bool:
        with self._cursor() as cur:
            cur.execute(
                "SELECT 1 FROM jobs WHERE name = %s AND version = %s", (name, version)
            )
            return cur.fetchone() is not None

    def insert_job(
        self,
        job_id: str,
        header: JobHeader,
        plans: Sequence[tuple[str, str, BlobRecord]],
        protocols: Sequence[tuple[str, BlobRecord]],
        checkpoint_id: str,
        model: BlobRecord,
        server_state: BlobRecord | None,
    ) -> JobRecord:
        """Store a job with its first checkpoint (alias latest) in one transaction."""
        try:
            with self._cursor() as cur:
                cur.execute(
                    "INSERT INTO jobs (id, name, version, client_config, server_config,"
                    " averaging_plan) VALUES (%s, %s, %s, %s, %s, %s)",
                    (
                        job_id,
                        header.name,
                        header.version,
                        Json(header.client_config),
                        Json(header.server_config),
                        header.averaging_plan,
                    ),
                )
                for name, plan_format, blob in plans:
                    cur.execute(
                        "INSERT INTO plans (job_id, name, format, object_key, digest,"
                        " size) VALUES (%s, %s, %s, %s, %s, %s)",
                        (job_id, name, plan_format, *_blob_values(blob)),
                    )
                for name, blob in protocols:
                    cur.execute(
                        "INSERT INTO protocols (job_id, name, object_key, digest, size)"
                        " VALUES (%s, %s, %s, %s, %s)",
                        (job_id, name, *_blob_values(blob)),
                    )
                self._insert_checkpoint(
                    cur, job_id, checkpoint_id, 1, None, model, server_state, {}
                )
                self._move_aliases(cur, job_id, checkpoint_id, (LATEST,))
        except StorageError as exc:
            if isinstance(exc.__cause__, psycopg2.errors.UniqueViolation):
                raise AlreadyExists(
                    f"job {header.name!r} version {header.version} is already hosted; "
                    "push a new version"
                ) from exc
            raise
        return self.job_by_id(job_id)

    def job_by_id(self, job_id: str) -> JobRecord:
        with self._cursor() as cur:
            cur.execute("SELECT * FROM job_listing WHERE id = %s", (job_id,))
            row = cur.fetchone()
        if row is None:
            raise NotFound(f"no job has id {job_id}; list jobs to find its id")
        return _job(row)

    def find_job(self, name: str, version: str) -> JobRecord:
        """A job by name and version; an empty version means the highest semver."""
        if not version:
            version = self._newest_version(name)
        with self._cursor() as cur:
            cur.execute(
                "SELECT * FROM job_listing WHERE name = %s AND version = %s",
                (name, version),
            )
            row = cur.fetchone()
        if row is None:
            known = self._versions(name)
            if not known:
                raise NotFound(f"no job is named {name!r}; push it first")
            raise NotFound(
                f"job {name!r} has no version {version}; hosted versions: "
                f"{', '.join(sorted(known, key=version_key))}"
            )
        return _job(row)

    def list_jobs(self, name: str) -> list[JobRecord]:
        with self._cursor() as cur:
            if name:
                cur.execute("SELECT * FROM job_listing WHERE name = %s", (name,))
            else:
                cur.execute("SELECT * FROM job_listing")
            jobs = [_job(row) for row in cur.fetchall()]
        jobs.sort(key=lambda job: (job.name, version_key(job.version)))
        return jobs

    def _versions(self, name: str) -> list[str]:
        with self._cursor() as cur:
            cur.execute("SELECT version FROM jobs WHERE name = %s", (name,))
            return [row[0] for row in cur.fetchall()]

    def _newest_version(self, name: str) -> str:
        versions = self._versions(name)
        if not versions:
            raise NotFound(f"no job is named {name!r}; push it first")
        return max(versions, key=version_key)

    # --- plans and protocols -------------------------------------------

    def plan(self, job: JobRecord, name: str, plan_format: str) -> BlobRecord:
        with self._cursor() as cur:
            cur.execute(
                "SELECT object_key, digest, size FROM plans"
                " WHERE job_id = %s AND name = %s AND format = %s",
                (job.id, name, plan_format),
            )
            row = cur.fetchone()
        if row is not None:
            return BlobRecord(row[0], row[1], int(row[2]))
        if name not in job.plans:
            raise NotFound(
                f"job {job.name!r} {job.version} has no plan {name!r}; its plans: "
                f"{', '.join(sorted(job.plans)) or 'none'}"
            )
        raise NotFound(
            f"plan {name!r} of job {job.name!r} {job.version} is not stored as "
            f"{plan_format!r}; ask for one of {', '.join(job.plans[name])}"
        )

    def protocol(self, job: JobRecord, name: str) -> BlobRecord:
        with self._cursor() as cur:
            cur.execute(
                "SELECT object_key, digest, size FROM protocols"
                " WHERE job_id = %s AND name = %s",
                (job.id, name),
            )
            row = cur.fetchone()
        if row is None:
            raise NotFound(
                f"job {job.name!r} {job.version} has no protocol {name!r}; its "
                f"protocols: {', '.join(job.protocols) or 'none'}"
            )
        return BlobRecord(row[0], row[1], int(row[2]))

    # --- checkpoints ---------------------------------------------------

    def checkpoint(
        self, job: JobRecord, number: int | None, alias: str | None
    ) -> CheckpointRecord:
        """A checkpoint by number, or by alias (latest when neither is given)."""
        with self._cursor() as cur:
            if number is not None:
                cur.execute(
                    "SELECT * FROM checkpoint_listing"
                    " WHERE job_id = %s AND number = %s",
                    (job.id, number),
                )
            else:
                cur.execute(
                    "SELECT c.* FROM checkpoint_listing c"
                    " JOIN checkpoint_aliases a ON a.checkpoint_id = c.id"
                    " WHERE a.job_id = %s AND a.alias = %s",
                    (job.id, alias or LATEST),
                )
            row = cur.fetchone()
        if row is not None:
            return _checkpoint(row)
        if number is not None:
            raise NotFound(
                f"job {job.name!r} {job.version} has no checkpoint {number}; the "
                f"latest is {job.latest_checkpoint}"
            )
        raise NotFound(
            f"job {job.name!r} {job.version} has no checkpoint alias {alias!r}; "
            "list its checkpoints to see their aliases"
        )

    def checkpoint_by_cycle(
        self, job_id: str, cycle_id: str
    ) -> CheckpointRecord | None:
        with self._cursor() as cur:
            cur.execute(
                "SELECT * FROM checkpoint_listing WHERE job_id = %s AND cycle_id = %s",
                (job_id, cycle_id),
            )
            row = cur.fetchone()
        return None if row is None else _checkpoint(row)

    def list_checkpoints(self, job_id: str) -> list[CheckpointRecord]:
        with self._cursor() as cur:
            cur.execute(
                "SELECT * FROM checkpoint_listing WHERE job_id = %s ORDER BY number",
                (job_id,),
            )
            return [_checkpoint(row) for row in cur.fetchall()]

    def server_state(self, checkpoint_id: str) -> BlobRecord | None:
        with self._cursor() as cur:
            cur.execute(
                "SELECT object_key, digest, size FROM server_states"
                " WHERE checkpoint_id = %s",
                (checkpoint_id,),
            )
            row = cur.fetchone()
        return None if row is None else BlobRecord(row[0], row[1], int(row[2]))

    def add_checkpoint(
        self,
        job_id: str,
        checkpoint_id: str,
        cycle_id: str,
        model: BlobRecord,
        server_state: BlobRecord | None,
        metrics: dict[str, float],
        aliases: Sequence[str],
    ) -> tuple[CheckpointRecord, bool]:
        """Store the job's next checkpoint unless this cycle made one already.

        Returns the checkpoint and whether this call created it. The job row
        is locked so numbers are handed out one at a time per job.
        """
        try:
            with self._cursor() as cur:
                cur.execute("SELECT 1 FROM jobs WHERE id = %s FOR UPDATE", (job_id,))
                if cur.fetchone() is None:
                    raise NotFound(f"no job has id {job_id}; list jobs to find its id")
                cur.execute(
                    "SELECT 1 FROM checkpoints WHERE job_id = %s AND cycle_id = %s",
                    (job_id, cycle_id),
                )
                if cur.fetchone() is None:
                    cur.execute(
                        "SELECT coalesce(max(number), 0) + 1 FROM checkpoints"
                        " WHERE job_id = %s",
                        (job_id,),
                    )
                    row = cur.fetchone()
                    assert row is not None
                    self._insert_checkpoint(
                        cur,
                        job_id,
                        checkpoint_id,
                        int(row[0]),
                        cycle_id,
                        model,
                        server_state,
                        metrics,
                    )
                    self._move_aliases(cur, job_id, checkpoint_id, (LATEST, *aliases))
        except StorageError as exc:
            # A concurrent call with the same cycle id won: fall through to read it.
            if not isinstance(exc.__cause__, psycopg2.errors.UniqueViolation):
                raise
        stored = self.checkpoint_by_cycle(job_id, cycle_id)
        if stored is None:
            raise StorageError(f"checkpoint of cycle {cycle_id} vanished after writing")
        return stored, stored.id == checkpoint_id

    def set_alias(self, job: JobRecord, number: int, alias: str) -> CheckpointRecord:
        with self._cursor() as cur:
            cur.execute(
                "SELECT id::text FROM checkpoints WHERE job_id = %s AND number = %s",
                (job.id, number),
            )
            row = cur.fetchone()
            if row is None:
                raise NotFound(
                    f"job {job.name!r} {job.version} has no checkpoint {number}; the "
                    f"latest is {job.latest_checkpoint}"
                )
            self._move_aliases(cur, job.id, row[0], (alias,))
        return self.checkpoint(job, number, None)

    # --- helpers inside a transaction ----------------------------------

    def _insert_checkpoint(
        self,
        cur: Cursor,
        job_id: str,
        checkpoint_id: str,
        number: int,
        cycle_id: str | None,
        model: BlobRecord,
        server_state: BlobRecord | None,
        metrics: dict[str, float],
    ) -> None:
        cur.execute(
            "INSERT INTO checkpoints (id, job_id, number, object_key, digest, size,"
            " metrics, cycle_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                checkpoint_id,
                job_id,
                number,
                *_blob_values(model),
                Json(metrics),
                cycle_id,
            ),
        )
        if server_state is not None:
            cur.execute(
                "INSERT INTO server_states (checkpoint_id, object_key, digest, size)"
                " VALUES (%s, %s, %s, %s)",
                (checkpoint_id, *_blob_values(server_state)),
            )

    def _move_aliases(
        self, cur: Cursor, job_id: str, checkpoint_id: str, aliases: Sequence[str]
    ) -> None:
        for alias in dict.fromkeys(aliases):
            cur.execute(
                "INSERT INTO checkpoint_aliases (job_id, alias, checkpoint_id)"
                " VALUES (%s, %s, %s) ON CONFLICT (job_id, alias) DO UPDATE"
                " SET checkpoint_id = EXCLUDED.checkpoint_id, updated_at = now()",
                (job_id, alias, checkpoint_id),
            )


def _blob_values(blob: BlobRecord) -> tuple[str, str, int]:
    return blob.object_key, blob.digest, blob.size
