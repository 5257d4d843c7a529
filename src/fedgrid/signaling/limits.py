"""Limits of the signaling service and the per-connection rate limiter."""

from __future__ import annotations

import time
from dataclasses import dataclass

from fedgrid.config import Settings

# WebSocket frames larger than this many times the message limit are not even
# read: the library closes the connection (code 1009) instead of answering.
HARD_SIZE_FACTOR = 4
# Frames a connection may have waiting to go out before it counts as stuck.
OUTBOX_FRAMES = 256


@dataclass(frozen=True)
class SignalingLimits:
    """Sizes, rates and timings one signaling replica enforces."""

    max_message_bytes: int = 64 * 1024
    messages_per_second: float = 50.0
    room_size: int = 100
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    member_ttl: float = 30.0
    join_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.member_ttl <= 0 or self.messages_per_second <= 0:
            raise ValueError("member_ttl and messages_per_second must be > 0")
        if self.room_size < 2:
            raise ValueError("a room must hold at least two workers")

    @classmethod
    def from_settings(cls, settings: Settings) -> SignalingLimits:
        """The limits FEDGRID_SIGNALING_* settings ask for."""
        return cls(
            max_message_bytes=settings.signaling_max_message_bytes,
            messages_per_second=settings.signaling_messages_per_second,
            room_size=settings.signaling_room_size,
            ping_interval=settings.signaling_ping_interval,
            ping_timeout=settings.signaling_ping_timeout,
            member_ttl=settings.signaling_member_ttl,
            join_timeout=settings.signaling_join_timeout,
        )

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between membership refreshes: three chances per expiry."""
        return self.member_ttl / 3

    @property
    def hard_max_bytes(self) -> int:
        """The largest frame the WebSocket layer reads at all."""
        return self.max_message_bytes * HARD_SIZE_FACTOR


class TokenBucket:
    """Allows `rate` events a second on average and bursts of `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()

    def take(self) -> bool:
        """Spend one token if there is one; False means over the limit."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
