"""Reading one framed diff without copies, checked against the model before use.

A diff arrives as a framed state stream (see fedgrid.tensors). The generic
reader there copies every data part several times; averaging reads hundreds of
diffs, so this module parses a diff held in one buffer and hands out tensor
views straight into it. Data parts, which carry nearly all the bytes, are
recognised by their fixed protobuf form; anything else goes through protobuf.

Parsing always checks the structure (names, shapes, dtypes, lengths). The
check for NaN/Inf reads every value a second time, so a caller that can detect
non-finite values more cheaply (see fedgrid.averaging.accumulate) may skip it.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
from dataclasses import dataclass, field
from typing import BinaryIO

import torch

from fedgrid.averaging.errors import DiffRejected
from fedgrid.averaging.layout import ModelLayout, TensorSpec, is_finite
from fedgrid.errors import TensorError
from fedgrid.tensors import MAX_FRAME_BYTES, parse_state_chunks, torch_dtype
from fedgrid.v1 import tensor_pb2

_FRAME = struct.Struct(">I")
_DATA_TAG = 0x12  # StateChunk.data: field 2, length-delimited
_READ_BYTES = 1024 * 1024


@dataclass
class Segment:
    """A run of elements of one parameter: a view into the diff's buffer."""

    spec: TensorSpec
    start: int  # element offset inside the flattened parameter
    values: torch.Tensor  # 1-D, the parameter's dtype


@dataclass
class ParsedDiff:
    """Every parameter of a validated diff, as segments over its buffer."""

    segments: list[Segment] = field(default_factory=list)

    def tensor(self, spec: TensorSpec) -> torch.Tensor:
        """The whole parameter (copied only when it came in several parts)."""
        parts = [s.values for s in self.segments if s.spec.index == spec.index]
        if not parts:
            return torch.empty(spec.shape, dtype=spec.dtype)
        flat = parts[0] if len(parts) == 1 else torch.cat(parts)
        return flat.reshape(spec.shape)

    def check_finite(self) -> None:
        """Raise DiffRejected, naming the tensor, if any value is NaN or Inf."""
        for segment in self.segments:
            if not is_finite(segment.values):
                raise DiffRejected(
                    f"diff tensor {segment.spec.name!r} holds NaN or Inf"
                )


class DiffBuffer:
    """One reusable buffer a diff is read into, so reading allocates nothing."""

    def __init__(self) -> None:
        self._data = bytearray()

    def fill(
        self,
        stream: BinaryIO,
        size: int,
        expected_sha256: str | None = None,
    ) -> memoryview:
        """Read exactly size bytes; with a digest, refuse bytes that differ."""
        if len(self._data) < size:
            self._data = bytearray(size)
        view = memoryview(self._data)[:size]
        digest = hashlib.sha256() if expected_sha256 else None
        filled = 0
        while filled < size:
            target = view[filled : min(size, filled + _READ_BYTES)]
            count = _read_into(stream, target)
            if not count:
                raise DiffRejected(f"diff blob ends after {filled} of {size} bytes")
            if digest is not None:
                digest.update(target[:count])
            filled += count
        if stream.read(1):
            raise DiffRejected(f"diff blob is longer than the reported {size} bytes")
        if digest is not None and digest.hexdigest() != expected_sha256:
            raise DiffRejected(
                "diff blob digest does not match the report "
                f"(stored {digest.hexdigest()[:12]}..., reported "
                f"{str(expected_sha256)[:12]}...)"
            )
        return view


def _read_into(stream: BinaryIO, target: memoryview) -> int:
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return int(readinto(target))
    data = stream.read(len(target))
    target[: len(data)] = data
    return len(data)


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    return -1, pos


def _data_part(payload: memoryview) -> memoryview | None:
    """The bytes of a data part in its canonical form, else None."""
    if not payload or payload[0] != _DATA_TAG:
        return None
    length, start = _varint(payload, 1)
    if length < 0 or start + length != len(payload):
        return None
    return payload[start:]


class _Parser:
    """Walks the frames of one diff, building segments over its buffer."""

    def __init__(self, layout: ModelLayout) -> None:
        self.layout = layout
        self.parsed = ParsedDiff()
        self.seen: set[str] = set()
        self.spec: TensorSpec | None = None
        self.itemsize = 0  # of the current parameter, looked up once per header
        self.nbytes = 0
        self.filled = 0  # bytes of the current parameter
        self.pieces: list[memoryview] = []  # parts not aligned to elements

    def header(self, header: tensor_pb2.TensorHeader) -> None:
        self.close()
        spec = self.layout.get(header.name)
        if spec is None:
            raise DiffRejected(f"diff has tensor {header.name!r}, not in the model")
        if header.name in self.seen:
            raise DiffRejected(f"diff has tensor {header.name!r} twice")
        try:
            dtype = torch_dtype(header.dtype)
        except TensorError as exc:
            raise DiffRejected(f"diff tensor {header.name!r}: {exc}") from exc
        shape = tuple(header.shape)
        if shape != spec.shape or dtype != spec.dtype:
            raise DiffRejected(
                f"diff tensor {header.name!r} is {list(shape)} of {dtype}; "
                f"the model's is {self.layout.describe(spec)}"
            )
        self.seen.add(header.name)
        self.spec, self.filled, self.pieces = spec, 0, []
        self.itemsize = spec.dtype.itemsize
        self.nbytes = spec.numel * self.itemsize

    def data(self, data: memoryview) -> None:
        spec = self.spec
        if spec is None:
            raise DiffRejected("diff data arrives before any tensor header")
        size = len(data)
        if not size:
            return  # an empty part carries nothing (and torch cannot view it)
        if self.filled + size > self.nbytes:
            raise DiffRejected(
                f"diff tensor {spec.name!r} has more bytes than its shape holds"
            )
        itemsize = self.itemsize
        if not self.pieces and self.filled % itemsize == 0 and size % itemsize == 0:
            values = torch.frombuffer(data, dtype=spec.dtype)
            self.parsed.segments.append(Segment(spec, self.filled // itemsize, values))
        else:
            self.pieces.append(data)
        self.filled += size

    def close(self) -> None:
        spec = self.spec
        if spec is None:
            return
        if self.filled != self.nbytes:
            raise DiffRejected(
                f"diff tensor {spec.name!r} stops after {self.filled} of "
                f"{self.nbytes} bytes"
            )
        if self.pieces:
            joined = bytearray(b"".join(self.pieces))
            start = (self.filled - len(joined)) // self.itemsize
            values = torch.frombuffer(joined, dtype=spec.dtype)
            self.parsed.segments.append(Segment(spec, start, values))
        self.spec = None

    def finish(self) -> ParsedDiff:
        self.close()
        missing = [spec.name for spec in self.layout if spec.name not in self.seen]
        if missing:
            raise DiffRejected(f"diff lacks tensors {missing}")
        return self.parsed


def parse_diff(
    data: memoryview | bytes | bytearray,
    layout: ModelLayout,
    check_values: bool = True,
) -> ParsedDiff:
    """Parse and validate a whole framed diff; raise DiffRejected with the reason.

    Without check_values, NaN and Inf are left for the caller to detect.
    """
    view = memoryview(data).cast("B")
    if view.readonly:
        # torch warns about views of read-only memory; these are only ever read.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            parsed = _parse(view, layout)
    else:
        parsed = _parse(view, layout)
    if check_values:
        parsed.check_finite()
    return parsed


def _parse(view: memoryview, layout: ModelLayout) -> ParsedDiff:
    parser = _Parser(layout)
    pos = 0
    while pos < len(view):
        if pos + _FRAME.size > len(view):
            raise DiffRejected("diff ends inside a frame header (truncated)")
        (length,) = _FRAME.unpack_from(view, pos)
        pos += _FRAME.size
        if length > MAX_FRAME_BYTES or pos + length > len(view):
            raise DiffRejected(
                f"diff frame of {length} bytes at offset {pos} runs past the end"
            )
        payload = view[pos : pos + length]
        pos += length
        data_bytes = _data_part(payload)
        if data_bytes is not None:
            parser.data(data_bytes)
            continue
        try:
            (chunk,) = parse_state_chunks([bytes(payload)])
        except TensorError as exc:
            raise DiffRejected(f"diff is not a state stream: {exc}") from exc
        kind = chunk.WhichOneof("part")
        if kind == "header":
            parser.header(chunk.header)
        elif kind == "data":
            parser.data(memoryview(bytearray(chunk.data)))  # a rare, odd form
        else:
            raise DiffRejected("diff has an empty state-stream part")
    return parser.finish()
