"""Fixed-window rate limits kept in Redis, shared by every gateway replica."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import redis

from fedgrid.config import Settings
from fedgrid.errors import Unavailable
from fedgrid.gateway.errors import RateLimited

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60

# Count one call in the current window; the first call of a window sets its
# expiry so stale windows vanish on their own.
_COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""


@dataclass(frozen=True)
class Limits:
    """Calls allowed per window; 0 turns a limit off."""

    auth_per_ip: int = 120
    cycle_requests_per_ip: int = 1200
    cycle_requests_per_worker: int = 60

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits named by the FEDGRID_GATEWAY_* settings."""
        return cls(
            auth_per_ip=settings.gateway_auth_per_ip,
            cycle_requests_per_ip=settings.gateway_cycle_requests_per_ip,
            cycle_requests_per_worker=settings.gateway_cycle_requests_per_worker,
        )


class RateLimiter:
    """Counts calls per (scope, identity) in fixed windows of WINDOW_SECONDS."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        limits: Limits,
        window_seconds: int = WINDOW_SECONDS,
    ) -> None:
        self._client = client
        self._prefix = f"{prefix}gateway:rate:"
        self._window = window_seconds
        self.limits = limits
        self._script = client.register_script(_COUNT_SCRIPT)

    def check_auth(self, address: str) -> None:
        """Count an auth call from this address."""
        self._hit("auth-ip", address, self.limits.auth_per_ip)

    def check_cycle_request(self, address: str, worker_id: str) -> None:
        """Count a cycle request from this address and this worker."""
        self._hit("cycle-ip", address, self.limits.cycle_requests_per_ip)
        self._hit("cycle-worker", worker_id, self.limits.cycle_requests_per_worker)

    def _hit(self, scope: str, identity: str, limit: int) -> None:
        if limit <= 0:
            return
        now = time.time()
        window = int(now // self._window)
        # Hash the identity so worker ids of any form make short, safe keys.
        digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
        key = f"{self._prefix}{scope}:{digest}:{window}"
        try:
            count = int(self._script(keys=[key], args=[self._window * 2]))
        except redis.RedisError as exc:
            raise Unavailable(
                "the rate limiter's store (Redis) cannot be reached; try again later"
            ) from exc
        if count > limit:
            retry_after = max(1.0, float((window + 1) * self._window - now))
            logger.info(
                "[Gateway.RateLimit] refused scope=%s count=%s limit=%s",
                scope,
                count,
                limit,
            )
            raise RateLimited(
                f"more than {limit} calls per {self._window}s ({scope}); "
                f"retry after {retry_after:.0f}s",
                retry_after=retry_after,
            )
