"""Live cycle state in Redis, changed only through the atomic scripts."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import redis
from redis.commands.core import Script

from fedgrid.cycles import scripts
from fedgrid.errors import StorageError, Unavailable
from fedgrid.jobconfig import ServerConfig

logger = logging.getLogger(__name__)

# How long a finished cycle's live keys stay in Redis; PostgreSQL keeps history.
RETENTION_SECONDS = 7 * 24 * 3600

_CONFIG_FIELDS = (
    "max_workers",
    "pool_selection",
    "random_admission_probability",
    "do_not_reuse_workers_until_cycle",
    "cycle_length",
    "num_cycles",
    "max_cycle_attempts",
    "min_diffs",
    "max_diffs",
    "minimum_upload_speed",
    "minimum_download_speed",
)


def _stored_name(field: str) -> str:
    # The scripts read max_cycle_attempts as the job's attempt limit.
    return "max_attempts" if field == "max_cycle_attempts" else field


class LiveState:
    """One Redis namespace (settings.redis_prefix) holding every job's live state."""

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        retention_seconds: int = RETENTION_SECONDS,
    ) -> None:
        self.prefix = prefix
        self._retention = str(retention_seconds)
        self._redis_url = redis_url
        self._client = redis.Redis.from_url(
            redis_url, decode_responses=True, socket_timeout=10
        )
        register: Callable[[str], Script] = self._client.register_script
        self._register = register(scripts.REGISTER_JOB)
        self._request = register(scripts.REQUEST_CYCLE)
        self._submit = register(scripts.SUBMIT_REPORT)
        self._close = register(scripts.CLOSE_AT_DEADLINE)
        self._finish = register(scripts.FINISH_AGGREGATION)
        self._due = register(scripts.DUE)
        self._claim = register(scripts.CLAIM_STALE)
        self._start_secure = register(scripts.START_SECURE)
        self._end_secure = register(scripts.END_SECURE)

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise Unavailable(f"Redis is unreachable while {what}: {exc}") from exc
        except redis.RedisError as exc:
            raise StorageError(f"Redis failed while {what}: {exc}") from exc

    def _run(self, script: Script, what: str, *args: object) -> Any:
        argv = [self.prefix, self._retention, *(str(arg) for arg in args)]
        with self._translated(what):
            reply = script(keys=[], args=argv)
        return json.loads(reply) if isinstance(reply, str) else reply

    def register_job(
        self,
        job_id: str,
        config: ServerConfig,
        checkpoint: int,
        cycle_id: str,
        extra: Mapping[str, object] | None = None,
    ) -> dict[str, Any]:
        """Store a job's rules and open its first cycle, unless it exists.

        `extra` holds further job fields the scripts read, such as the
        privacy budget (privacy_cycles, privacy_stop_reason).
        """
        pairs: list[object] = []
        for field in _CONFIG_FIELDS:
            pairs += [_stored_name(field), getattr(config, field)]
        for name, value in (extra or {}).items():
            pairs += [name, value]
        result: dict[str, Any] = self._run(
            self._register,
            "registering a job",
            job_id,
            config.to_json(),
            checkpoint,
            cycle_id,
            *pairs,
        )
        return result

    def request_cycle(
        self,
        job_id: str,
        worker_id: str,
        download_kbps: float,
        upload_kbps: float,
        draw: float,
        request_key: str,
    ) -> dict[str, Any]:
        """Admit or refuse one worker for the job's open cycle."""
        result: dict[str, Any] = self._run(
            self._request,
            "admitting a worker",
            job_id,
            worker_id,
            repr(float(download_kbps)),
            repr(float(upload_kbps)),
            repr(draw),
            request_key,
        )
        return result

    def submit_report(
        self, request_key: str, worker_id: str, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        """Accept or refuse a report; the report that fills max_diffs closes."""
        result: dict[str, Any] = self._run(
            self._submit,
            "accepting a report",
            request_key,
            worker_id,
            json.dumps(metadata),
        )
        return result

    def close_at_deadline(self, cycle_id: str, next_cycle_id: str) -> dict[str, Any]:
        """Close a cycle whose deadline passed; exactly one caller wins."""
        result: dict[str, Any] = self._run(
            self._close, "closing a cycle", cycle_id, next_cycle_id
        )
        return result

    def finish_aggregation(
        self,
        cycle_id: str,
        outcome: str,
        checkpoint: int,
        reason: str,
        next_cycle_id: str,
    ) -> dict[str, Any]:
        """Complete or fail a closing cycle and open the next one."""
        result: dict[str, Any] = self._run(
            self._finish,
            "finishing an aggregation",
            cycle_id,
            outcome,
            checkpoint,
            reason,
            next_cycle_id,
        )
        return result

    def start_secure(self, cycle_id: str, next_cycle_id: str) -> dict[str, Any]:
        """End a secure cycle's admission if it is due; exactly one caller wins."""
        result: dict[str, Any] = self._run(
            self._start_secure, "closing a secure admission", cycle_id, next_cycle_id
        )
        return result

    def end_secure(
        self,
        cycle_id: str,
        outcome: str,
        inputs: int,
        reason: str,
        next_cycle_id: str,
    ) -> dict[str, Any]:
        """End a secure cycle's run ('done' or 'failed'); exactly one caller wins."""
        result: dict[str, Any] = self._run(
            self._end_secure,
            "ending a secure aggregation run",
            cycle_id,
            outcome,
            inputs,
            reason,
            next_cycle_id,
        )
        return result

    def due(self, which: str, grace: float, limit: int = 100) -> list[str]:
        """Ids whose time is older than now - grace in one of the timer sets.

        which: 'deadlines', 'closing', 'sa_admission' (secure cycles still
        admitting) or 'sa_running' (secure cycles running their rounds).
        """
        found = self._run(self._due, "scanning timers", which, grace, limit)
        return [str(item) for item in found] if isinstance(found, list) else []

    def claim_stale(self, cycle_id: str, grace: float) -> bool:
        """Take the right to enqueue a quiet closing cycle again."""
        return bool(self._run(self._claim, "claiming a cycle", cycle_id, grace))

    def job(self, job_id: str) -> dict[str, str] | None:
        """A job's live fields, or None."""
        return self._hash(f"{self.prefix}cm:job:{job_id}", "reading a job")

    def cycle(self, cycle_id: str) -> dict[str, str] | None:
        """A cycle's live fields, or None."""
        return self._hash(f"{self.prefix}cm:cycle:{cycle_id}", "reading a cycle")

    def assignment(self, request_key: str) -> dict[str, str] | None:
        """What a request key was issued for, or None."""
        return self._hash(f"{self.prefix}cm:key:{request_key}", "reading a key")

    def cycle_workers(self, cycle_id: str) -> dict[str, str]:
        """worker id -> request key for every worker admitted to a cycle."""
        key = f"{self.prefix}cm:cycle:{cycle_id}:workers"
        return self._hash(key, "reading assignments") or {}

    def cycle_reports(self, cycle_id: str) -> dict[str, dict[str, Any]]:
        """request key -> metadata of every accepted report of a cycle."""
        key = f"{self.prefix}cm:cycle:{cycle_id}:reports"
        raw = self._hash(key, "reading reports") or {}
        return {request_key: json.loads(value) for request_key, value in raw.items()}

    def _hash(self, key: str, what: str) -> dict[str, str] | None:
        with self._translated(what):
            found = cast("dict[str, str]", self._client.hgetall(key))
        return found or None

    def open_cycles(self) -> int:
        """How many cycles wait for their deadline, across all jobs."""
        with self._translated("counting open cycles"):
            return int(self._client.zcard(f"{self.prefix}cm:deadlines"))

    def ping(self) -> None:
        """Raise Unavailable when Redis does not answer."""
        with self._translated("checking Redis"):
            self._client.ping()

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()
