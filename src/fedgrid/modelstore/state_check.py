"""Checking that uploaded bytes form a state stream, without holding tensors."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from fedgrid.errors import TensorError
from fedgrid.tensors import MAX_FRAME_BYTES, checked_shape, nbytes, torch_dtype
from fedgrid.v1 import tensor_pb2

_HEADER = struct.Struct(">I")


class StateStreamCheck:
    """Follows framed StateChunk bytes as they arrive and refuses malformed ones.

    It applies the rules of fedgrid.tensors.read_state_stream (frame sizes,
    dtypes, shapes, data lengths, unique names) but only counts data bytes,
    so a model of any size is checked with one frame in memory.
    """

    def __init__(self, max_frame: int = MAX_FRAME_BYTES) -> None:
        self._max_frame = max_frame
        self._buffer = bytearray()
        self._names: set[str] = set()
        self._open: str | None = None
        self._remaining = 0
        self._frames = 0

    @property
    def tensors(self) -> int:
        """How many tensors have started so far."""
        return len(self._names)

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the stream."""
        self._buffer += data
        while len(self._buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buffer)
            if length > self._max_frame:
                raise TensorError(
                    f"frame {self._frames} declares {length} bytes; "
                    f"the limit is {self._max_frame}"
                )
            end = _HEADER.size + length
            if len(self._buffer) < end:
                return
            payload = bytes(self._buffer[_HEADER.size : end])
            del self._buffer[:end]
            self._part(payload)

    def finish(self) -> int:
        """Check the stream ended cleanly; return the number of tensors."""
        if self._buffer:
            raise TensorError(
                f"stream ends inside a frame ({len(self._buffer)} bytes left over; "
                "truncated)"
            )
        if self._open is not None:
            raise TensorError(
                f"stream ends inside tensor {self._open!r}: {self._remaining} bytes "
                "missing (truncated)"
            )
        if not self._names:
            raise TensorError("the state stream holds no tensor")
        return len(self._names)

    def _part(self, payload: bytes) -> None:
        chunk = tensor_pb2.StateChunk()
        try:
            chunk.ParseFromString(payload)
        except Exception as exc:  # protobuf raises DecodeError and others
            raise TensorError(
                f"state-stream part {self._frames} is not a StateChunk"
            ) from exc
        self._frames += 1
        kind = chunk.WhichOneof("part")
        if kind == "header":
            self._header(chunk.header)
        elif kind == "data":
            self._data(len(chunk.data))
        else:
            raise TensorError("empty state-stream part (neither header nor data)")

    def _header(self, header: tensor_pb2.TensorHeader) -> None:
        if self._open is not None:
            raise TensorError(
                f"tensor {self._open!r} ends {self._remaining} bytes short"
            )
        name = header.name
        if not name:
            raise TensorError("a tensor in the state stream has no name")
        if name in self._names:
            raise TensorError(f"tensor {name!r} appears twice in the state")
        size = nbytes(torch_dtype(header.dtype), checked_shape(header.shape, name))
        self._names.add(name)
        if size:
            self._open, self._remaining = name, size

    def _data(self, size: int) -> None:
        if self._open is None:
            raise TensorError("state-stream data arrives before any tensor header")
        if size > self._remaining:
            raise TensorError(
                f"tensor {self._open!r} gets {size - self._remaining} bytes more "
                "than its shape holds"
            )
        self._remaining -= size
        if self._remaining == 0:
            self._open = None


def checked_state_stream(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Pass chunks through, raising TensorError as soon as they stop making sense."""
    check = StateStreamCheck()
    for chunk in chunks:
        check.feed(chunk)
        yield chunk
    check.finish()
