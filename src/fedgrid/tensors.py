"""Tensors and model states to and from protobuf, whole or as framed streams."""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import BinaryIO

import torch

from fedgrid.errors import TensorError
from fedgrid.v1 import tensor_pb2

if sys.byteorder != "little":  # pragma: no cover - every supported host
    raise ImportError("fedgrid's tensor codec needs a little-endian host")

DTYPES: dict[torch.dtype, tensor_pb2.DType] = {
    torch.float32: tensor_pb2.FLOAT32,
    torch.float64: tensor_pb2.FLOAT64,
    torch.float16: tensor_pb2.FLOAT16,
    torch.bfloat16: tensor_pb2.BFLOAT16,
    torch.int64: tensor_pb2.INT64,
    torch.int32: tensor_pb2.INT32,
    torch.int16: tensor_pb2.INT16,
    torch.int8: tensor_pb2.INT8,
    torch.uint8: tensor_pb2.UINT8,
    torch.bool: tensor_pb2.BOOL,
}
TORCH_DTYPES: dict[tensor_pb2.DType, torch.dtype] = {
    code: dtype for dtype, code in DTYPES.items()
}

MAX_DIMS = 16
MAX_FRAME_BYTES = 64 * 1024 * 1024
DEFAULT_CHUNK_BYTES = 1024 * 1024
_FRAME_HEADER = struct.Struct(">I")


def dtype_code(dtype: torch.dtype) -> tensor_pb2.DType:
    """The protobuf enum value of a torch dtype."""
    try:
        return DTYPES[dtype]
    except KeyError:
        raise TensorError(
            f"dtype {dtype} cannot be sent; use one of "
            f"{', '.join(str(d) for d in DTYPES)}"
        ) from None


def torch_dtype(code: int) -> torch.dtype:
    """The torch dtype of a protobuf enum value."""
    try:
        return TORCH_DTYPES[code]  # type: ignore[index]
    except KeyError:
        raise TensorError(f"unknown dtype code {code}") from None


def checked_shape(shape: Iterable[int], where: str) -> tuple[int, ...]:
    """Validate a shape from the wire: few dims, none negative."""
    dims = tuple(int(d) for d in shape)
    if len(dims) > MAX_DIMS:
        raise TensorError(f"{where}: {len(dims)} dimensions; at most {MAX_DIMS}")
    if any(d < 0 for d in dims):
        raise TensorError(f"{where}: negative dimension in shape {list(dims)}")
    return dims


def nbytes(dtype: torch.dtype, shape: tuple[int, ...]) -> int:
    """Size in bytes of a dense tensor of this dtype and shape."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return math.prod(shape) * itemsize


def _raw_bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    array = flat.view(torch.uint8).numpy()
    return memoryview(array.data)


def tensor_to_proto(tensor: torch.Tensor) -> tensor_pb2.Tensor:
    """Encode a tensor as one message (little-endian, row-major bytes)."""
    return tensor_pb2.Tensor(
        dtype=dtype_code(tensor.dtype),
        shape=list(tensor.shape),
        data=_raw_bytes(tensor).tobytes(),
    )


def tensor_from_proto(
    message: tensor_pb2.Tensor, where: str = "tensor"
) -> torch.Tensor:
    """Decode a tensor message, refusing data that does not fit its shape."""
    dtype = torch_dtype(message.dtype)
    shape = checked_shape(message.shape, where)
    expected = nbytes(dtype, shape)
    if len(message.data) != expected:
        raise TensorError(
            f"{where}: {len(message.data)} bytes of data for shape {list(shape)} "
            f"of {dtype}; expected {expected}"
        )
    if expected == 0:
        return torch.empty(shape, dtype=dtype)
    buffer = bytearray(message.data)
    return torch.frombuffer(buffer, dtype=dtype).reshape(shape)


def state_to_proto(state: Mapping[str, torch.Tensor]) -> tensor_pb2.State:
    """Encode a whole (small) model state as one message."""
    return tensor_pb2.State(
        tensors=[
            tensor_pb2.NamedTensor(name=name, tensor=tensor_to_proto(tensor))
            for name, tensor in state.items()
        ]
    )


def state_from_proto(message: tensor_pb2.State) -> dict[str, torch.Tensor]:
    """Decode a State message; names must be unique."""
    state: dict[str, torch.Tensor] = {}
    for item in message.tensors:
        if item.name in state:
            raise TensorError(f"tensor {item.name!r} appears twice in the state")
        state[item.name] = tensor_from_proto(item.tensor, where=item.name)
    return state


# --- framing -------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    """Prefix a serialized message with its 4-byte big-endian length."""
    return _FRAME_HEADER.pack(len(payload)) + payload


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    parts: list[bytes] = []
    remaining = size
    while remaining:
        part = stream.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def read_frames(stream: BinaryIO, max_frame: int = MAX_FRAME_BYTES) -> Iterator[bytes]:
    """Yield the payloads of framed messages until the stream ends cleanly."""
    while True:
        header = _read_exactly(stream, _FRAME_HEADER.size)
        if not header:
            return
        if len(header) < _FRAME_HEADER.size:
            raise TensorError("stream ends inside a frame header (truncated)")
        (length,) = _FRAME_HEADER.unpack(header)
        if length > max_frame:
            raise TensorError(f"frame of {length} bytes exceeds the limit {max_frame}")
        payload = _read_exactly(stream, length)
        if len(payload) < length:
            raise TensorError(
                f"stream ends inside a frame: {len(payload)} of {length} bytes"
            )
        yield payload


# --- state streams -------------------------------------------------------


def iter_state_chunks(
    state: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]],
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Iterator[tensor_pb2.StateChunk]:
    """Split a model state into header and data parts of at most chunk_bytes."""
    items = state.items() if isinstance(state, Mapping) else state
    for name, tensor in items:
        header = tensor_pb2.TensorHeader(
            name=name, dtype=dtype_code(tensor.dtype), shape=list(tensor.shape)
        )
        yield tensor_pb2.StateChunk(header=header)
        raw = _raw_bytes(tensor)
        for start in range(0, len(raw), chunk_bytes):
            yield tensor_pb2.StateChunk(data=bytes(raw[start : start + chunk_bytes]))


def encode_state_stream(
    state: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]],
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Iterator[bytes]:
    """Yield the framed bytes of a state stream (for blobs and HTTP bodies)."""
    for chunk in iter_state_chunks(state, chunk_bytes):
        yield frame(chunk.SerializeToString())


def state_stream_bytes(
    state: Mapping[str, torch.Tensor], chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> bytes:
    """A whole state stream as bytes, for models small enough to hold."""
    return b"".join(encode_state_stream(state, chunk_bytes))


class StateAssembler:
    """Rebuild tensors from state-stream parts, yielding each one as it completes.

    Memory is one tensor at a time plus what the caller keeps, so a consumer
    can fold a diff tensor by tensor without holding the whole model twice.
    """

    def __init__(self, max_tensor_bytes: int | None = None) -> None:
        self._max_tensor_bytes = max_tensor_bytes
        self._name: str | None = None
        self._dtype: torch.dtype | None = None
        self._shape: tuple[int, ...] = ()
        self._buffer: bytearray = bytearray()
        self._filled = 0
        self._seen: set[str] = set()

    def feed(self, chunk: tensor_pb2.StateChunk) -> tuple[str, torch.Tensor] | None:
        """Take one part; return (name, tensor) when a tensor is complete."""
        kind = chunk.WhichOneof("part")
        if kind == "header":
            if self._name is not None:
                raise TensorError(
                    f"tensor {self._name!r} ends after {self._filled} of "
                    f"{len(self._buffer)} bytes"
                )
            return self._open(chunk.header)
        if kind == "data":
            return self._fill(chunk.data)
        raise TensorError("empty state-stream part (neither header nor data)")

    def finish(self) -> None:
        """Check that the stream did not stop inside a tensor."""
        if self._name is not None:
            raise TensorError(
                f"stream ends inside tensor {self._name!r}: {self._filled} of "
                f"{len(self._buffer)} bytes (truncated)"
            )

    def _open(self, header: tensor_pb2.TensorHeader) -> tuple[str, torch.Tensor] | None:
        name = header.name
        if not name:
            raise TensorError("a tensor in the state stream has no name")
        if name in self._seen:
            raise TensorError(f"tensor {name!r} appears twice in the state")
        dtype = torch_dtype(header.dtype)
        shape = checked_shape(header.shape, name)
        size = nbytes(dtype, shape)
        if self._max_tensor_bytes is not None and size > self._max_tensor_bytes:
            raise TensorError(
                f"tensor {name!r} declares {size} bytes; the limit is "
                f"{self._max_tensor_bytes}"
            )
        self._seen.add(name)
        self._name, self._dtype, self._shape = name, dtype, shape
        self._buffer = bytearray(size)
        self._filled = 0
        return self._complete() if size == 0 else None

    def _fill(self, data: bytes) -> tuple[str, torch.Tensor] | None:
        if self._name is None:
            raise TensorError("state-stream data arrives before any tensor header")
        end = self._filled + len(data)
        if end > len(self._buffer):
            raise TensorError(
                f"tensor {self._name!r} gets {end} bytes; its shape "
                f"{list(self._shape)} holds {len(self._buffer)}"
            )
        self._buffer[self._filled : end] = data
        self._filled = end
        return self._complete() if end == len(self._buffer) else None

    def _complete(self) -> tuple[str, torch.Tensor]:
        assert self._name is not None and self._dtype is not None
        name, dtype, shape = self._name, self._dtype, self._shape
        if self._buffer:
            tensor = torch.frombuffer(self._buffer, dtype=dtype).reshape(shape)
        else:
            tensor = torch.empty(shape, dtype=dtype)
        self._name, self._dtype, self._buffer = None, None, bytearray()
        return name, tensor


def iter_state_tensors(
    chunks: Iterable[tensor_pb2.StateChunk], max_tensor_bytes: int | None = None
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) from state-stream parts, one tensor at a time."""
    assembler = StateAssembler(max_tensor_bytes)
    for chunk in chunks:
        done = assembler.feed(chunk)
        if done is not None:
            yield done
    assembler.finish()


def parse_state_chunks(payloads: Iterable[bytes]) -> Iterator[tensor_pb2.StateChunk]:
    """Parse serialized StateChunk payloads, refusing garbage."""
    for index, payload in enumerate(payloads):
        chunk = tensor_pb2.StateChunk()
        try:
            chunk.ParseFromString(payload)
        except Exception as exc:  # protobuf raises DecodeError and others
            raise TensorError(f"state-stream part {index} is not a StateChunk") from exc
        yield chunk


def read_state_stream(
    stream: BinaryIO, max_tensor_bytes: int | None = None
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) from framed state-stream bytes."""
    yield from iter_state_tensors(
        parse_state_chunks(read_frames(stream)), max_tensor_bytes
    )


def load_state_stream(stream: BinaryIO) -> dict[str, torch.Tensor]:
    """Read a whole framed state stream into a dict (small models)."""
    return dict(read_state_stream(stream))
