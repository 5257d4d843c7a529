"""The tensor codec: exact round trips and clear refusals of malformed bytes."""

from __future__ import annotations

import io

import pytest
import torch

from fedgrid.errors import TensorError
from fedgrid.tensors import (
    DTYPES,
    frame,
    iter_state_chunks,
    load_state_stream,
    read_frames,
    state_from_proto,
    state_stream_bytes,
    state_to_proto,
    tensor_from_proto,
    tensor_to_proto,
)
from fedgrid.v1 import tensor_pb2


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_every_dtype_round_trips(dtype: torch.dtype) -> None:
    tensor = (torch.arange(24) % 7).reshape(2, 3, 4).to(dtype)

    decoded = tensor_from_proto(tensor_to_proto(tensor))

    assert decoded.dtype == dtype
    assert torch.equal(decoded, tensor)


def test_bytes_are_little_endian_row_major() -> None:
    message = tensor_to_proto(torch.tensor([[1, 2]], dtype=torch.int32))

    assert message.data == b"\x01\x00\x00\x00\x02\x00\x00\x00"
    assert list(message.shape) == [1, 2]


def test_non_contiguous_tensor_is_sent_in_logical_order() -> None:
    tensor = torch.arange(6.0).reshape(2, 3).t()

    assert torch.equal(tensor_from_proto(tensor_to_proto(tensor)), tensor)


def test_data_that_does_not_fit_the_shape_is_refused() -> None:
    message = tensor_pb2.Tensor(
        dtype=tensor_pb2.FLOAT32, shape=[2, 2], data=b"\x00" * 12
    )

    with pytest.raises(TensorError, match="12 bytes of data for shape \\[2, 2\\]"):
        tensor_from_proto(message, where="w")


def test_negative_dimension_and_unknown_dtype_are_refused() -> None:
    with pytest.raises(TensorError, match="negative dimension"):
        tensor_from_proto(tensor_pb2.Tensor(dtype=tensor_pb2.FLOAT32, shape=[-1]))
    with pytest.raises(TensorError, match="unknown dtype"):
        tensor_from_proto(tensor_pb2.Tensor(dtype=0, shape=[0]))


def test_state_message_round_trip_and_duplicate_names() -> None:
    state = {"w": torch.randn(3, 2), "b": torch.zeros(2)}

    decoded = state_from_proto(state_to_proto(state))

    assert list(decoded) == ["w", "b"]
    assert all(torch.equal(decoded[k], state[k]) for k in state)
    twice = state_to_proto(state)
    twice.tensors.append(twice.tensors[0])
    with pytest.raises(TensorError, match="appears twice"):
        state_from_proto(twice)


def test_state_stream_splits_large_tensors_into_chunks() -> None:
    state = {"big": torch.randn(1000), "empty": torch.zeros(0, 4), "n": torch.tensor(3)}

    chunks = list(iter_state_chunks(state, chunk_bytes=256))
    decoded = load_state_stream(io.BytesIO(state_stream_bytes(state, chunk_bytes=256)))

    assert sum(1 for c in chunks if c.WhichOneof("part") == "data") == 16 + 1
    assert all(len(c.data) <= 256 for c in chunks)
    assert list(decoded) == list(state)
    assert all(torch.equal(decoded[k], state[k]) for k in state)


def test_truncated_state_stream_is_refused() -> None:
    data = state_stream_bytes({"w": torch.randn(100)}, chunk_bytes=64)

    with pytest.raises(TensorError, match=r"truncated|ends inside"):
        load_state_stream(io.BytesIO(data[:-70]))
    with pytest.raises(TensorError, match=r"ends inside a frame"):
        load_state_stream(io.BytesIO(data[:-3]))


def test_overfull_tensor_and_garbage_parts_are_refused() -> None:
    header = tensor_pb2.StateChunk(
        header=tensor_pb2.TensorHeader(name="w", dtype=tensor_pb2.FLOAT32, shape=[1])
    )
    overfull = frame(header.SerializeToString()) + frame(
        tensor_pb2.StateChunk(data=b"\x00" * 8).SerializeToString()
    )

    with pytest.raises(TensorError, match="holds 4"):
        load_state_stream(io.BytesIO(overfull))
    with pytest.raises(TensorError, match="not a StateChunk"):
        load_state_stream(io.BytesIO(frame(b"\xff\xff\xff")))


def test_frames_larger_than_the_limit_are_refused() -> None:
    with pytest.raises(TensorError, match="exceeds the limit"):
        list(read_frames(io.BytesIO(frame(b"x" * 100)), max_frame=10))


def test_declared_tensor_size_limit() -> None:
    data = state_stream_bytes({"w": torch.zeros(1000)})

    from fedgrid.tensors import read_state_stream

    with pytest.raises(TensorError, match="declares 4000 bytes"):
        list(read_state_stream(io.BytesIO(data), max_tensor_bytes=100))
