"""Service settings, read once from `FEDGRID_*` environment variables."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from fedgrid.errors import ConfigError

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError("must be between 0 and 65535")
    return port


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive whole number")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be a whole number >= 0")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be a number > 0")
    return number


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("must be one of true/false/1/0/yes/no/on/off")


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in schemes or not parsed.netloc:
            raise ValueError(f"must be a URL starting with {' or '.join(schemes)}://")
        return value

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def _address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError("must be HOST:PORT")
    _port(port)
    return value


@dataclass(frozen=True)
class Settings:
    """Every setting a fedgrid process may need, validated at start-up."""

    host: str = "127.0.0.1"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "fedgrid:"  # every live-state key starts with it
    broker_url: str = ""  # defaults to redis_url
    database_url: str = "postgresql://postgres@127.0.0.1:5432/fedgrid"
    object_store: str = "file"
    object_store_path: Path | None = None  # defaults to var_dir / "objects"
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "fedgrid"
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    gateway_port: int = 8080
    model_store_port: int = 50051
    cycle_manager_port: int = 50052
    signaling_port: int = 8765
    model_store_metrics_port: int = 9101
    cycle_manager_metrics_port: int = 9102
    aggregator_metrics_port: int = 9103
    model_store_address: str = ""  # defaults to host:model_store_port
    cycle_manager_address: str = ""  # defaults to host:cycle_manager_port
    admin_token: str = ""
    session_secret: str = ""
    max_report_bytes: int = 512 * 1024 * 1024
    gateway_workers: int = 2  # gunicorn worker processes
    gateway_threads: int = 8  # threads per gunicorn worker
    # Calls per minute; 0 turns a limit off.
    gateway_auth_per_ip: int = 120
    gateway_cycle_requests_per_ip: int = 1200
    gateway_cycle_requests_per_worker: int = 60
    chunk_bytes: int = 1024 * 1024
    aggregation_queue: str = ""  # defaults to redis_prefix + "aggregation"
    aggregator_name: str = "fedgrid-aggregator"  # Celery node name before the @
    aggregator_concurrency: int = 2  # tasks one aggregator process runs at once
    # Seconds before Redis hands an unacknowledged task (its worker died) to
    # another worker; keep it above the longest aggregation.
    aggregation_visibility_timeout: int = 3600
    # Test-only: tasks wait while this file exists, so tests can kill a worker
    # in the middle of a task. Leave empty in every deployment.
    aggregator_test_hold_file: str = ""
    # Signaling limits: bytes per frame, frames per second per connection (bursts
    # of twice that pass), workers per room; seconds for the WebSocket ping, for
    # a replica's room membership to outlive its last heartbeat, and for a new
    # connection to send its join frame.
    signaling_max_message_bytes: int = 64 * 1024
    signaling_messages_per_second: float = 50.0
    signaling_room_size: int = 100
    signaling_ping_interval: float = 20.0
    signaling_ping_timeout: float = 20.0
    signaling_member_ttl: float = 30.0
    signaling_join_timeout: float = 10.0
    log_level: str = "INFO"
    log_format: str = "text"
    var_dir: Path = Path("var")

    def __post_init__(self) -> None:
        if not self.broker_url:
            object.__setattr__(self, "broker_url", self.redis_url)
        if self.object_store_path is None:
            object.__setattr__(self, "object_store_path", self.var_dir / "objects")
        if not self.aggregation_queue:
            # one grid per prefix: grids sharing a Redis never take each
            # other's aggregations
            queue = f"{self.redis_prefix}aggregation"
            object.__setattr__(self, "aggregation_queue", queue)
        if not self.model_store_address:
            address = f"{self.host}:{self.model_store_port}"
            object.__setattr__(self, "model_store_address", address)
        if not self.cycle_manager_address:
            address = f"{self.host}:{self.cycle_manager_port}"
            object.__setattr__(self, "cycle_manager_address", address)
        if self.object_store == "s3" and not self.s3_endpoint:
            raise ConfigError(
                "FEDGRID_S3_ENDPOINT is required when FEDGRID_OBJECT_STORE=s3 "
                "(e.g. 127.0.0.1:9000)"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read `FEDGRID_<FIELD>` variables; a bad value names its variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            variable = f"FEDGRID_{field.name.upper()}"
            raw = env.get(variable)
            if raw is None or raw == "":
                continue
            parser = _PARSERS.get(field.name, str)
            try:
                values[field.name] = parser(raw)
            except ValueError as exc:
                raise ConfigError(f"{variable}={raw!r} is invalid: {exc}") from exc
        return cls(**values)

    def require(self, name: str) -> str:
        """Return a string setting that has no default, or explain how to set it."""
        value = getattr(self, name)
        if not value:
            raise ConfigError(
                f"FEDGRID_{name.upper()} must be set for this service; "
                "it has no default on purpose"
            )
        return str(value)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "redis_url": _url("redis", "rediss", "unix"),
    "broker_url": _url("redis", "rediss", "amqp", "pyamqp"),
    "database_url": _url("postgresql", "postgres"),
    "object_store": _choice("file", "s3"),
    "object_store_path": Path,
    "s3_secure": _bool,
    "gateway_port": _port,
    "model_store_port": _port,
    "cycle_manager_port": _port,
    "signaling_port": _port,
    "model_store_metrics_port": _port,
    "cycle_manager_metrics_port": _port,
    "aggregator_metrics_port": _port,
    "aggregator_concurrency": _positive_int,
    "aggregation_visibility_timeout": _positive_int,
    "model_store_address": _address,
    "cycle_manager_address": _address,
    "max_report_bytes": _positive_int,
    "gateway_workers": _positive_int,
    "gateway_threads": _positive_int,
    "gateway_auth_per_ip": _non_negative_int,
    "gateway_cycle_requests_per_ip": _non_negative_int,
    "gateway_cycle_requests_per_worker": _non_negative_int,
    "chunk_bytes": _positive_int,
    "signaling_max_message_bytes": _positive_int,
    "signaling_messages_per_second": _positive_float,
    "signaling_room_size": _positive_int,
    "signaling_ping_interval": _positive_float,
    "signaling_ping_timeout": _positive_float,
    "signaling_member_ttl": _positive_float,
    "signaling_join_timeout": _positive_float,
    "log_level": _choice("DEBUG", "INFO", "WARNING", "ERROR"),
    "log_format": _choice("text", "json"),
    "var_dir": Path,
}
