"""Byte-stream adapters: iterators as readers, readers with a size or time limit."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, Protocol, cast

from fedgrid.errors import InvalidArgument
from fedgrid.gateway.errors import PayloadTooLarge, RequestTimeout


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
    reader = io.BufferedReader(LimitedReader(stream, limit, what))
    return cast(BinaryIO, reader)


class ReadDeadline:
    """How long a body may take: an idle limit and a minimum average rate.

    A client must deliver at least `min_bytes_per_second` on average once
    `grace_seconds` have passed, and never pause longer than `idle_seconds`;
    so a few slow clients cannot hold the gateway's threads for long.
    """

    def __init__(
        self,
        idle_seconds: float,
        grace_seconds: float,
        min_bytes_per_second: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._idle = idle_seconds
        self._grace = grace_seconds
        self._rate = min_bytes_per_second
        self._clock = clock
        self._started = clock()

    def due(self, received: int, requested: int) -> float:
        """When a read of requested more bytes must have finished (clock time)."""
        now = self._clock()
        due = min(
            now + self._idle,
            self._started + self._grace + (received + requested) / self._rate,
        )
        if due <= now:
            raise self.missed()
        return due

    def missed(self) -> RequestTimeout:
        """The error for a body that did not keep to the deadline."""
        return RequestTimeout(
            f"the body arrived slower than {self._rate:.0f} bytes/s or paused for "
            f"more than {self._idle:.1f}s; the gateway stopped waiting for it"
        )


class ReadGuard(Protocol):
    """Cuts off a server read that runs past its due time."""

    def arm(self, due: float) -> None:
        """Watch the coming read until due (clock time)."""

    def disarm(self) -> bool:
        """Stop watching; True when the read was cut off."""

    def release(self) -> None:
        """The body is in: lift every bound on the connection."""


class TimedReader(io.RawIOBase):
    """Reads a request body under a ReadDeadline, mapping overdue reads to 408.

    A server's read call waits until it has every byte asked for, so a client
    trickling bytes is only caught by the guard cutting the read off. A read
    that breaks off otherwise is an InvalidArgument, never an unexpected error.
    """

    def __init__(
        self,
        stream: BinaryIO,
        deadline: ReadDeadline,
        guard: ReadGuard | None = None,
    ) -> None:
        self._stream = stream
        self._deadline = deadline
        self._guard = guard
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        due = self._deadline.due(self.received, len(buffer))
        if self._guard is not None:
            self._guard.arm(due)
        try:
            data = self._stream.read(len(buffer))
        except Exception as exc:
            cut = self._guard is not None and self._guard.disarm()
            if cut or _timed_out(exc):
                raise self._deadline.missed() from exc
            if isinstance(exc, OSError | ValueError):
                raise InvalidArgument(
                    "the connection broke off inside the body"
                ) from exc
            raise
        if self._guard is not None:
            if self._guard.disarm():
                raise self._deadline.missed()
            if not data:
                self._guard.release()
        size = len(data)
        self.received += size
        buffer[:size] = data
        return size


def _timed_out(error: BaseException | None) -> bool:
    """Whether a socket wait timed out, even under a server's own error type."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, TimeoutError):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def timed(
    stream: BinaryIO, deadline: ReadDeadline, guard: ReadGuard | None = None
) -> BinaryIO:
    """A buffered reader over stream that keeps to deadline."""
    raw = TimedReader(stream, deadline, guard)
    return io.BufferedReader(raw)  # type: ignore[return-value]
