"""Speed-test payloads: incompressible bytes to download, counted uploads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

from fedgrid.errors import InvalidArgument
from fedgrid.gateway.errors import PayloadTooLarge

DEFAULT_DOWNLOAD_BYTES = 1024 * 1024
MAX_TRANSFER_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 256 * 1024


def download_size(raw: str | None) -> int:
    """The download size a worker asked for, checked against the limit."""
    if raw is None or raw == "":
        return DEFAULT_DOWNLOAD_BYTES
    try:
        size = int(raw)
    except ValueError:
        raise InvalidArgument(
            f"size must be a whole number of bytes, got {raw[:32]!r}"
        ) from None
    if not 0 <= size <= MAX_TRANSFER_BYTES:
        raise InvalidArgument(f"size must be between 0 and {MAX_TRANSFER_BYTES} bytes")
    return size


def random_chunks(size: int, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Yield size random bytes that no proxy or codec can compress."""
    remaining = size
    while remaining > 0:
        step = min(chunk_bytes, remaining)
        yield os.urandom(step)
        remaining -= step


def drain_upload(stream: BinaryIO, limit: int = MAX_TRANSFER_BYTES) -> int:
    """Read and discard an upload, returning its size; refuse past the limit."""
    received = 0
    while True:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            return received
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"speed-test uploads are at most {limit} bytes")
