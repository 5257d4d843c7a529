"""Options for worker-to-worker channels: ICE servers, candidates, chunking."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import ifaddr

from fedgrid.errors import ConfigError


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server, as in the browser's RTCIceServer."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class P2PConfig:
    """How a worker connects to its peers and moves messages between them.

    No ICE server is used unless one is given, so nothing but the peers'
    own addresses is ever contacted.
    """

    ice_servers: tuple[IceServer, ...] = ()
    # Interface names or IP addresses to offer as host candidates; None offers
    # every non-loopback address of the machine (the library's default).
    host_interfaces: tuple[str, ...] | None = None
    # Networks a remote candidate must be in to be tried; None tries them all.
    remote_networks: tuple[str, ...] | None = None
    chunk_bytes: int = 16 * 1024  # browsers accept 16 KiB messages everywhere
    buffer_high_bytes: int = 1024 * 1024  # pause sending above this...
    buffer_low_bytes: int = 256 * 1024  # ...until the buffer drains below this
    send_timeout: float = 30.0  # longest wait for the buffer to drain
    connect_timeout: float = 30.0
    max_message_bytes: int = 256 * 1024 * 1024
    max_partial_messages: int = 64  # messages being stitched at once, per peer

    def __post_init__(self) -> None:
        if not 0 < self.buffer_low_bytes < self.buffer_high_bytes:
            raise ConfigError("need 0 < buffer_low_bytes < buffer_high_bytes")
        if not 0 < self.chunk_bytes <= 256 * 1024:
            raise ConfigError("chunk_bytes must be between 1 and 262144")
        for network in self.remote_networks or ():
            try:
                ipaddress.ip_network(network)
            except ValueError as exc:
                raise ConfigError(
                    f"remote_networks: {network!r} is not a network like 127.0.0.0/8"
                ) from exc

    @classmethod
    def loopback(cls) -> P2PConfig:
        """Peers on one machine only: 127.0.0.1 candidates, nothing else tried."""
        return cls(host_interfaces=("127.0.0.1",), remote_networks=("127.0.0.0/8",))

    def host_addresses(self) -> tuple[str, ...] | None:
        """The IP addresses host_interfaces names, checked against the machine."""
        if self.host_interfaces is None:
            return None
        adapters = {adapter.nice_name: adapter for adapter in ifaddr.get_adapters()}
        addresses: list[str] = []
        for item in self.host_interfaces:
            try:
                addresses.append(str(ipaddress.ip_address(item)))
                continue
            except ValueError:
                pass
            adapter = adapters.get(item)
            if adapter is None:
                raise ConfigError(
                    f"host_interfaces: {item!r} is neither an IP address nor one of "
                    f"this machine's interfaces ({', '.join(sorted(adapters))})"
                )
            for ip in adapter.ips:
                addresses.append(ip.ip if isinstance(ip.ip, str) else ip.ip[0])
        return tuple(addresses)

    def allows_remote(self, address: str) -> bool:
        """Whether a remote candidate's address may be contacted."""
        if self.remote_networks is None:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False  # a hostname or mDNS name would need a lookup
        return any(ip in ipaddress.ip_network(n) for n in self.remote_networks)
