"""Jobs as the gateway serves them: cached by id, with their parsed configs."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fedgrid.errors import ConfigError, NotFound
from fedgrid.jobconfig import ServerConfig
from fedgrid.v1 import model_store_pb2 as pb

REDACTED = "<redacted>"


@dataclass(frozen=True)
class ServedJob:
    """A stored job with its configs parsed once."""

    job: pb.Job
    server_config: ServerConfig
    client_config: dict[str, Any]

    @property
    def id(self) -> str:
        return self.job.id

    @classmethod
    def from_proto(cls, job: pb.Job) -> ServedJob:
        """Parse a stored job's configs (the model store validated them)."""
        server_config = ServerConfig.from_json(job.server_config_json or "{}")
        try:
            client_config = json.loads(job.client_config_json or "{}")
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"job {job.id}: stored client_config is not JSON"
            ) from exc
        return cls(job=job, server_config=server_config, client_config=client_config)

    def plans(self) -> dict[str, list[str]]:
        """Plan names with the formats each one is served in."""
        return {plan.name: list(plan.formats) for plan in self.job.plans}


class JobCache:
    """Jobs by id; a stored job never changes, so entries never go stale."""

    def __init__(self, load: Callable[[str], pb.Job], capacity: int = 256) -> None:
        self._load = load
        self._capacity = capacity
        self._entries: OrderedDict[str, ServedJob] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, job_id: str) -> ServedJob:
        """The job with this id, from the model store on first use."""
        with self._lock:
            if job_id in self._entries:
                self._entries.move_to_end(job_id)
                return self._entries[job_id]
        job = self._load(job_id)
        if job.id != job_id:
            raise NotFound(f"job {job_id!r} does not exist")
        served = ServedJob.from_proto(job)
        self.put(served)
        return served

    def put(self, served: ServedJob) -> None:
        """Remember a job fetched by other means (e.g. by name at auth time)."""
        with self._lock:
            self._entries[served.id] = served
            self._entries.move_to_end(served.id)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


def job_json(job: pb.Job) -> dict[str, Any]:
    """A job as the admin API shows it, with secrets redacted."""
    try:
        server_config: Any = json.loads(job.server_config_json or "{}")
    except json.JSONDecodeError:
        server_config = {}
    auth = (
        server_config.get("authentication") if isinstance(server_config, dict) else None
    )
    if isinstance(auth, dict) and "secret" in auth:
        auth["secret"] = REDACTED
    try:
        client_config: Any = json.loads(job.client_config_json or "{}")
    except json.JSONDecodeError:
        client_config = {}
    return {
        "id": job.id,
        "name": job.name,
        "version": job.version,
        "plans": {plan.name: list(plan.formats) for plan in job.plans},
        "protocols": list(job.protocols),
        "averaging_plan": job.averaging_plan,
        "created_at": job.created_at_unix,
        "latest_checkpoint": job.latest_checkpoint,
        "server_config": server_config,
        "client_config": client_config,
    }
