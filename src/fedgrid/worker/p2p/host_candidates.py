"""Restricting the host candidates a peer connection gathers to chosen addresses.

aiortc gathers candidates through aioice, which offers every non-loopback
address of the machine and has no option to choose. The restriction is a
context variable read by a wrapper around aioice's address lookup, so it holds
only for gathering done inside `restricted_host_candidates` and leaves every
other peer connection of the process alone.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import aioice.ice

_CHOSEN: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "fedgrid_p2p_host_addresses", default=None
)
_library_lookup: Callable[[bool, bool], list[str]] | None = None


def _lookup(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen = _CHOSEN.get()
    if chosen is None:
        assert _library_lookup is not None
        return _library_lookup(use_ipv4, use_ipv6)
    return [address for address in chosen if (use_ipv6 if ":" in address else use_ipv4)]


def _install() -> None:
    global _library_lookup
    if _library_lookup is None:
        _library_lookup = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = _lookup


@contextmanager
def restricted_host_candidates(addresses: tuple[str, ...] | None) -> Iterator[None]:
    """Gather host candidates only on addresses while inside (None: no change)."""
    if addresses is None:
        yield
        return
    _install()
    token = _CHOSEN.set(addresses)
    try:
        yield
    finally:
        _CHOSEN.reset(token)
