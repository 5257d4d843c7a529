"""A checkpoint's tensor layout, and checking a diff against it part by part."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from fedgrid import tensors
from fedgrid.errors import InvalidArgument
from fedgrid.gateway.streams import reader
from fedgrid.v1 import tensor_pb2

_FLOATING = {torch.float16, torch.bfloat16, torch.float32, torch.float64}


@dataclass(frozen=True)
class TensorSpec:
    """A tensor's name, dtype and shape, as its header states them."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return tensors.nbytes(self.dtype, self.shape)


Layout = tuple[TensorSpec, ...]


def read_layout(blob: Iterable[bytes]) -> Layout:
    """The tensor headers of a framed state stream, skipping over its data."""
    specs: list[TensorSpec] = []
    for chunk in tensors.parse_state_chunks(tensors.read_frames(reader(blob))):
        if chunk.WhichOneof("part") == "header":
            header = chunk.header
            specs.append(
                TensorSpec(
                    name=header.name,
                    dtype=tensors.torch_dtype(header.dtype),
                    shape=tensors.checked_shape(header.shape, header.name),
                )
            )
    return tuple(specs)


class LayoutCache:
    """Checkpoint layouts by (job id, checkpoint number); checkpoints never change."""

    def __init__(
        self, load: Callable[[str, int], Iterable[bytes]], capacity: int = 64
    ) -> None:
        self._load = load
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, int], Layout] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, job_id: str, checkpoint: int) -> Layout:
        """The layout, read from the model store on first use."""
        key = (job_id, checkpoint)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        layout = read_layout(self._load(job_id, checkpoint))
        with self._lock:
            self._entries[key] = layout
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        return layout


class DiffChecker:
    """Checks state-stream parts against a layout as they arrive.

    Holds at most one element's worth of leftover bytes, never a whole tensor,
    so a diff of any size is checked in the memory of one part.
    """

    def __init__(self, layout: Layout) -> None:
        self._specs = {spec.name: spec for spec in layout}
        self._seen: set[str] = set()
        self._open: TensorSpec | None = None
        self._remaining = 0
        self._leftover = b""

    def feed(self, chunk: tensor_pb2.StateChunk) -> None:
        """Check one part; raise InvalidArgument naming the tensor at fault."""
        kind = chunk.WhichOneof("part")
        if kind == "header":
            self._header(chunk.header)
        elif kind == "data":
            self._data(chunk.data)
        else:
            raise InvalidArgument("a diff part is empty (neither header nor data)")

    def finish(self) -> None:
        """Check that every tensor of the checkpoint arrived whole."""
        if self._open is not None:
            raise InvalidArgument(
                f"the diff ends inside tensor {self._open.name!r} "
                f"({self._remaining} bytes missing)"
            )
        missing = [name for name in self._specs if name not in self._seen]
        if missing:
            raise InvalidArgument(
                f"the diff lacks tensors {missing[:5]} of the checkpoint"
            )

    def _header(self, header: tensor_pb2.TensorHeader) -> None:
        if self._open is not None:
            raise InvalidArgument(
                f"tensor {self._open.name!r} ends {self._remaining} bytes short"
            )
        spec = self._specs.get(header.name)
        if spec is None:
            raise InvalidArgument(
                f"the diff has tensor {header.name[:64]!r}, which the checkpoint "
                "does not have"
            )
        if header.name in self._seen:
            raise InvalidArgument(f"tensor {spec.name!r} appears twice in the diff")
        dtype = tensors.torch_dtype(header.dtype)
        shape = tensors.checked_shape(header.shape, spec.name)
        if dtype != spec.dtype or shape != spec.shape:
            raise InvalidArgument(
                f"tensor {spec.name!r} is {dtype} of shape {list(shape)}; the "
                f"checkpoint's is {spec.dtype} of shape {list(spec.shape)}"
            )
        self._seen.add(spec.name)
        self._leftover = b""
        if spec.nbytes:
            self._open, self._remaining = spec, spec.nbytes

    def _data(self, data: bytes) -> None:
        spec = self._open
        if spec is None:
            raise InvalidArgument("diff data arrives before any tensor header")
        if len(data) > self._remaining:
            raise InvalidArgument(
                f"tensor {spec.name!r} gets more bytes than its shape holds"
            )
        self._remaining -= len(data)
        if spec.dtype in _FLOATING:
            self._check_finite(spec, data)
        if self._remaining == 0:
            self._open = None

    def _check_finite(self, spec: TensorSpec, data: bytes) -> None:
        joined = self._leftover + data
        itemsize = torch.empty((), dtype=spec.dtype).element_size()
        whole = len(joined) - len(joined) % itemsize
        self._leftover = joined[whole:]
        if not whole:
            return
        values = torch.frombuffer(bytearray(joined[:whole]), dtype=spec.dtype)
        if not bool(torch.isfinite(values).all()):
            raise InvalidArgument(
                f"tensor {spec.name!r} of the diff holds NaN or infinite values"
            )
