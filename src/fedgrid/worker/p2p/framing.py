"""Split-and-stitch framing, so messages of any size cross a data channel."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from fedgrid.worker.p2p.errors import FramingError

# version, message id, chunk count, chunk index
_HEADER = struct.Struct(">BQII")
HEADER_BYTES = _HEADER.size
VERSION = 1


def split(message_id: int, payload: bytes, chunk_bytes: int) -> Iterator[bytes]:
    """The chunks of one message, each with its header, at most chunk_bytes long."""
    room = chunk_bytes - HEADER_BYTES
    if room <= 0:
        raise ValueError(f"chunk_bytes must exceed the {HEADER_BYTES}-byte header")
    count = max(1, -(-len(payload) // room))
    view = memoryview(payload)
    for index in range(count):
        part = view[index * room : (index + 1) * room]
        yield _HEADER.pack(VERSION, message_id, count, index) + part


@dataclass
class _Partial:
    count: int
    parts: dict[int, bytes] = field(default_factory=dict)
    size: int = 0


class Stitcher:
    """Puts the chunks from one peer back into messages, within memory bounds."""

    def __init__(self, max_message_bytes: int, max_partial_messages: int) -> None:
        self._max_bytes = max_message_bytes
        self._max_partial = max_partial_messages
        self._partial: dict[int, _Partial] = {}

    @property
    def pending(self) -> int:
        """Messages begun and not yet complete."""
        return len(self._partial)

    def add(self, chunk: bytes) -> bytes | None:
        """Take one chunk; return the whole message when this chunk completes it."""
        if len(chunk) < HEADER_BYTES:
            raise FramingError("a chunk is shorter than its header")
        version, message_id, count, index = _HEADER.unpack_from(chunk)
        if version != VERSION:
            raise FramingError(f"unknown framing version {version}")
        if count == 0 or index >= count:
            raise FramingError(f"chunk {index} of {count} is out of range")
        body = chunk[HEADER_BYTES:]
        if count == 1:
            return body

        partial = self._partial.get(message_id)
        if partial is None:
            if len(self._partial) >= self._max_partial:
                raise FramingError(
                    f"more than {self._max_partial} messages in flight from one peer"
                )
            partial = self._partial[message_id] = _Partial(count)
        if partial.count != count:
            raise FramingError(f"message {message_id} changed its chunk count")
        if index in partial.parts:
            raise FramingError(f"chunk {index} of message {message_id} came twice")
        partial.size += len(body)
        if partial.size > self._max_bytes:
            raise FramingError(
                f"message {message_id} exceeds the {self._max_bytes}-byte limit"
            )
        partial.parts[index] = body

        if len(partial.parts) < count:
            return None
        del self._partial[message_id]
        return b"".join(partial.parts[i] for i in range(count))
