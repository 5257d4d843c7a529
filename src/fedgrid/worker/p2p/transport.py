"""The transport protocols such as secure aggregation use between workers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Message:
    """Bytes from one peer."""

    peer_id: str
    data: bytes


class Transport(Protocol):
    """Sends bytes to a named peer and receives what peers send, in any size."""

    @property
    def peer_id(self) -> str:
        """This worker's own id."""
        ...

    @property
    def peers(self) -> frozenset[str]:
        """Peers that can be sent to now."""
        ...

    async def send(self, peer_id: str, data: bytes) -> None:
        """Deliver data to peer_id, or raise PeerGone or PeerTimeout."""
        ...

    async def receive(self, timeout: float | None = None) -> Message:
        """The next whole message from any peer; TimeoutError after timeout."""
        ...
