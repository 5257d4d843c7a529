"""Parsing framed diffs without copies, and refusing the malformed ones."""

from __future__ import annotations

import hashlib
import io
import math

import pytest
import torch

from fedgrid.averaging import DiffBuffer, DiffRejected, ModelLayout, parse_diff
from fedgrid.tensors import frame, state_stream_bytes
from fedgrid.v1 import tensor_pb2
from tests.averaging.conftest import model_state, random_diff


def test_parse_returns_every_tensor_even_when_split_in_odd_chunks() -> None:
    layout = ModelLayout.of(model_state())
    diff = random_diff(1)

    parsed = parse_diff(state_stream_bytes(diff, chunk_bytes=7), layout)

    for spec in layout:
        assert torch.equal(parsed.tensor(spec), diff[spec.name])


def test_parse_is_zero_copy_for_whole_chunks() -> None:
    layout = ModelLayout.of(model_state())
    data = bytearray(state_stream_bytes(random_diff(2)))

    parsed = parse_diff(data, layout)
    data[-8:] = bytes(8)  # the int64 counter is the last tensor

    counter = parsed.tensor(layout.get("bn.num_batches_tracked"))
    assert int(counter) == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.update({"fc.bias": torch.zeros(5)}), "is [5]"),
        (
            lambda d: d.update({"fc.bias": torch.zeros(4, dtype=torch.float64)}),
            "float64",
        ),
        (lambda d: d.pop("fc.bias"), "lacks tensors ['fc.bias']"),
        (lambda d: d.update({"extra": torch.zeros(1)}), "'extra', not in the model"),
        (lambda d: d["fc.weight"].__setitem__((0, 0), math.nan), "NaN or Inf"),
        (lambda d: d["fc.bias"].__setitem__(1, math.inf), "NaN or Inf"),
    ],
)
def test_mismatched_or_non_finite_diffs_are_rejected_with_reason(
    change: object, reason: str
) -> None:
    layout = ModelLayout.of(model_state())
    diff = random_diff(3)
    change(diff)  # type: ignore[operator]

    with pytest.raises(
        DiffRejected, match=reason.replace("[", r"\[").replace("]", r"\]")
    ):
        parse_diff(state_stream_bytes(diff), layout)


def test_truncated_diff_is_rejected() -> None:
    layout = ModelLayout.of(model_state())
    data = state_stream_bytes(random_diff(4))

    with pytest.raises(DiffRejected, match=r"runs past the end|stops after"):
        parse_diff(data[:-3], layout)


def test_non_canonical_data_part_goes_through_protobuf() -> None:
    layout = ModelLayout.of({"w": torch.zeros(2)})
    header = tensor_pb2.StateChunk(
        header=tensor_pb2.TensorHeader(name="w", dtype=tensor_pb2.FLOAT32, shape=[2])
    )
    values = torch.tensor([1.5, -2.0]).numpy().tobytes()
    # An empty data part followed by the real one: protobuf keeps the last.
    odd = b"\x12\x00" + tensor_pb2.StateChunk(data=values).SerializeToString()
    data = frame(header.SerializeToString()) + frame(odd)

    parsed = parse_diff(data, layout)

    assert parsed.tensor(layout.specs[0]).tolist() == [1.5, -2.0]


def test_buffer_checks_size_and_digest() -> None:
    data = state_stream_bytes(random_diff(5))
    buffer = DiffBuffer()
    digest = hashlib.sha256(data).hexdigest()

    view = buffer.fill(io.BytesIO(data), len(data), digest)
    assert bytes(view) == data
    with pytest.raises(DiffRejected, match="digest does not match"):
        buffer.fill(io.BytesIO(data), len(data), "0" * 64)
    with pytest.raises(DiffRejected, match="ends after"):
        buffer.fill(io.BytesIO(data[:-1]), len(data), None)
    with pytest.raises(DiffRejected, match="longer than"):
        buffer.fill(io.BytesIO(data + b"x"), len(data), None)


def test_empty_data_part_is_skipped() -> None:
    layout = ModelLayout.of({"w": torch.zeros(2)})
    header = tensor_pb2.StateChunk(
        header=tensor_pb2.TensorHeader(name="w", dtype=tensor_pb2.FLOAT32, shape=[2])
    )
    values = torch.tensor([1.5, -2.0]).numpy().tobytes()
    data = (
        frame(header.SerializeToString())
        + frame(b"\x12\x00")
        + frame(tensor_pb2.StateChunk(data=values).SerializeToString())
    )

    parsed = parse_diff(data, layout)

    assert parsed.tensor(layout.specs[0]).tolist() == [1.5, -2.0]
