"""Split-and-stitch framing, frame parsing and P2P options, without the network."""

from __future__ import annotations

import random

import aioice.ice
import pytest

from fedgrid.errors import ConfigError
from fedgrid.signaling.frames import FrameError, RelayFrame, parse_client_frame
from fedgrid.worker.p2p import FramingError, P2PConfig
from fedgrid.worker.p2p.framing import HEADER_BYTES, Stitcher, split
from fedgrid.worker.p2p.host_candidates import restricted_host_candidates


@pytest.mark.parametrize(
    "size", [0, 1, 100 - HEADER_BYTES, 100 - HEADER_BYTES + 1, 10_000]
)
def test_messages_of_any_size_split_and_stitch_back(size: int) -> None:
    payload = random.Random(size).randbytes(size)

    chunks = list(split(7, payload, chunk_bytes=100))
    stitcher = Stitcher(max_message_bytes=1 << 20, max_partial_messages=4)
    results = [stitcher.add(chunk) for chunk in chunks]

    assert all(len(chunk) <= 100 for chunk in chunks)
    assert results[:-1] == [None] * (len(chunks) - 1)
    assert results[-1] == payload
    assert stitcher.pending == 0


def test_interleaved_and_reordered_chunks_stitch_by_message_id() -> None:
    first, second = b"a" * 500, b"b" * 300
    chunks_a = list(split(1, first, 64))
    chunks_b = list(split(2, second, 64))
    mixed = [c for pair in zip(chunks_a, chunks_b, strict=False) for c in pair]
    mixed += chunks_a[len(chunks_b) :]
    mixed.reverse()
    stitcher = Stitcher(1 << 20, 4)

    done = [m for m in (stitcher.add(c) for c in mixed) if m is not None]

    assert sorted(done) == sorted([first, second])


def test_bad_chunks_are_refused() -> None:
    chunks = list(split(3, b"x" * 1000, 100))
    stitcher = Stitcher(max_message_bytes=500, max_partial_messages=1)

    with pytest.raises(FramingError, match="shorter"):
        stitcher.add(b"\x01\x02")
    with pytest.raises(FramingError, match="version"):
        stitcher.add(b"\x09" + chunks[0][1:])
    stitcher.add(chunks[0])
    with pytest.raises(FramingError, match="twice"):
        stitcher.add(chunks[0])
    with pytest.raises(FramingError, match="in flight"):
        stitcher.add(next(split(4, b"y" * 1000, 100)))
    with pytest.raises(FramingError, match="limit"):
        for chunk in chunks[1:]:
            stitcher.add(chunk)


def test_relay_frames_keep_only_known_fields() -> None:
    frame = parse_client_frame(
        '{"type": "offer", "to": "bob", "sdp": "v=0", "from": "forged", "x": 1}'
    )

    assert isinstance(frame, RelayFrame)
    assert frame.relayed("alice") == {"type": "offer", "from": "alice", "sdp": "v=0"}


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "join", "token": "t", "job_id": "j", "cycle_id": "../c", '
        '"protocol": "p"}',
        '{"type": "join", "job_id": "j", "cycle_id": "c", "protocol": "p"}',
        '{"type": "candidate", "to": "b", "candidate": {"candidate": "c", '
        '"sdpMLineIndex": true}}',
        '{"type": "answer", "to": "", "sdp": "v=0"}',
    ],
)
def test_malformed_frames_name_the_problem(raw: str) -> None:
    with pytest.raises(FrameError) as caught:
        parse_client_frame(raw)

    assert caught.value.code == "bad_frame"
    assert caught.value.message


def test_host_candidates_are_restricted_only_inside_the_context() -> None:
    config = P2PConfig(host_interfaces=("127.0.0.1",))

    with restricted_host_candidates(config.host_addresses()):
        inside = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
    outside = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)

    assert inside == ["127.0.0.1"]
    assert "127.0.0.1" not in outside


def test_p2p_options_are_checked() -> None:
    loopback = P2PConfig.loopback()

    assert loopback.ice_servers == ()
    assert P2PConfig().ice_servers == ()
    assert loopback.allows_remote("127.0.0.1")
    assert not loopback.allows_remote("192.0.2.7")
    assert not loopback.allows_remote("peer.local")
    with pytest.raises(ConfigError, match="interfaces"):
        P2PConfig(host_interfaces=("no-such-interface0",)).host_addresses()
    with pytest.raises(ConfigError, match="remote_networks"):
        P2PConfig(remote_networks=("not a network",))
    with pytest.raises(ConfigError, match="buffer"):
        P2PConfig(buffer_low_bytes=10, buffer_high_bytes=5)
