"""Plain records the model store's repository returns and its service uses."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class BlobKind(enum.Enum):
    """What an uploaded blob is."""

    MODEL = "model"
    PLAN = "plan"
    PROTOCOL = "protocol"
    SERVER_STATE = "server_state"


@dataclass(frozen=True)
class BlobSpec:
    """Names an uploaded blob: its kind, and for plans and protocols a name."""

    kind: BlobKind
    name: str = ""
    format: str = ""


@dataclass(frozen=True)
class BlobRecord:
    """Where a blob's bytes are and what they must hash to."""

    object_key: str
    digest: str
    size: int


@dataclass(frozen=True)
class JobHeader:
    """What a data scientist sends to host a job, before its blobs."""

    name: str
    version: str
    client_config: dict[str, Any]
    server_config: dict[str, Any]
    averaging_plan: str = ""


@dataclass(frozen=True)
class JobRecord:
    """A hosted job as stored."""

    id: str
    name: str
    version: str
    client_config: dict[str, Any]
    server_config: dict[str, Any]
    averaging_plan: str
    created_at: datetime
    plans: dict[str, list[str]] = field(default_factory=dict)
    protocols: list[str] = field(default_factory=list)
    latest_checkpoint: int = 0


@dataclass(frozen=True)
class CheckpointHeader:
    """What an aggregation sends to store a checkpoint, before its blobs."""

    job_id: str
    cycle_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckpointRecord:
    """A numbered checkpoint as stored, with the aliases that point at it."""

    id: str
    job_id: str
    number: int
    blob: BlobRecord
    created_at: datetime
    metrics: dict[str, float]
    cycle_id: str | None
    aliases: tuple[str, ...] = ()
