"""Diffs and report bodies: a framed Report then the framed diff, sized upfront."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping

import torch

from fedgrid.errors import InvalidArgument
from fedgrid.tensors import (
    DEFAULT_CHUNK_BYTES,
    dtype_code,
    encode_state_stream,
    frame,
    nbytes,
)
from fedgrid.v1 import report_pb2, tensor_pb2
from fedgrid.worker.client import SizedBody

FRAME_HEADER_BYTES = 4


def compute_diff(
    original: Mapping[str, torch.Tensor], trained: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """original - trained for every tensor of the checkpoint, same dtypes."""
    missing = sorted(set(original) - set(trained))
    extra = sorted(set(trained) - set(original))
    if missing or extra:
        raise InvalidArgument(
            f"trained parameters must match the checkpoint: missing {missing}, "
            f"unexpected {extra}"
        )
    diff: dict[str, torch.Tensor] = {}
    for name, before in original.items():
        after = trained[name].detach()
        if tuple(after.shape) != tuple(before.shape):
            raise InvalidArgument(
                f"trained {name!r} has shape {list(after.shape)}; the checkpoint's "
                f"is {list(before.shape)}"
            )
        diff[name] = (before - after.to(before.dtype)).contiguous()
    return diff


def check_diff(
    original: Mapping[str, torch.Tensor], diff: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Validate a ready-made diff against the checkpoint the way the grid will."""
    if set(diff) != set(original):
        raise InvalidArgument(
            f"the diff's tensors {sorted(diff)} differ from the checkpoint's "
            f"{sorted(original)}"
        )
    checked: dict[str, torch.Tensor] = {}
    for name, before in original.items():
        tensor = diff[name].detach()
        if tuple(tensor.shape) != tuple(before.shape) or tensor.dtype != before.dtype:
            raise InvalidArgument(
                f"diff {name!r} is {tensor.dtype} {list(tensor.shape)}; the "
                f"checkpoint's is {before.dtype} {list(before.shape)}"
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise InvalidArgument(f"diff {name!r} holds NaN or infinite values")
        checked[name] = tensor.contiguous()
    return checked


def _varint_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def state_stream_size(
    state: Mapping[str, torch.Tensor], chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> int:
    """Bytes of encode_state_stream(state), computed without encoding data."""
    total = 0
    for name, tensor in state.items():
        header = tensor_pb2.StateChunk(
            header=tensor_pb2.TensorHeader(
                name=name, dtype=dtype_code(tensor.dtype), shape=list(tensor.shape)
            )
        )
        total += FRAME_HEADER_BYTES + header.ByteSize()
        size = nbytes(tensor.dtype, tuple(tensor.shape))
        full, rest = divmod(size, chunk_bytes)
        for part in [chunk_bytes] * full + ([rest] if rest else []):
            total += FRAME_HEADER_BYTES + 1 + _varint_size(part) + part
    return total


def report_body(
    request_key: str,
    sample_count: int,
    metrics: Mapping[str, float],
    diff: Mapping[str, torch.Tensor],
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    on_progress: Callable[[int], None] | None = None,
) -> SizedBody:
    """The report's HTTP body, streamed tensor by tensor with a known length."""
    if sample_count < 1:
        raise InvalidArgument(f"sample_count must be >= 1, got {sample_count}")
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        number = float(value)
        if not math.isfinite(number):
            raise InvalidArgument(f"metric {key!r} is not finite: {value!r}")
        clean[key] = number
    header = frame(
        report_pb2.Report(
            request_key=request_key, sample_count=sample_count, metrics=clean
        ).SerializeToString()
    )

    def parts() -> Iterator[bytes]:
        yield header
        yield from encode_state_stream(diff, chunk_bytes)

    length = len(header) + state_stream_size(diff, chunk_bytes)
    return SizedBody(parts, length, on_progress)
