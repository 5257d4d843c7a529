"""Byte-stream adapters: iterators as readers, readers with a size limit."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from fedgrid.gateway.errors import PayloadTooLarge


class IteratorReader(io.RawIOBase):
    """A binary reader over an iterator of byte chunks (e.g. a gRPC stream)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def reader(chunks: Iterable[bytes]) -> BinaryIO:
    """A buffered binary reader over byte chunks."""
    return io.BufferedReader(IteratorReader(chunks))  # type: ignore[return-value]


class LimitedReader(io.RawIOBase):
    """Reads from a stream, refusing with PayloadTooLarge past `limit` bytes."""

    def __init__(self, stream: BinaryIO, limit: int, what: str = "body") -> None:
        self._stream = stream
        self._limit = limit
        self._what = what
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        if not data:
            return 0
        self.consumed += len(data)
        if self.consumed > self._limit:
            raise PayloadTooLarge(
                f"the {self._what} is larger than the limit of {self._limit} bytes"
            )
        size = len(data)
        buffer[:size] = data
        return size


def limited(stream: BinaryIO, limit: int, what: str = "body") -> BinaryIO:
    """A buffered reader over stream that refuses more than limit bytes."""
    return io.BufferedReader(LimitedReader(stream, limit, what))  # type: ignore[return-value]
