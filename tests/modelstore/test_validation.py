"""Name rules and the streaming state-stream check, without a server."""

from __future__ import annotations

import io

import pytest
import torch

from fedgrid.errors import InvalidArgument, TensorError
from fedgrid.modelstore.names import (
    check_alias,
    check_config_json,
    check_name,
    check_version,
    version_key,
)
from fedgrid.modelstore.state_check import StateStreamCheck, checked_state_stream
from fedgrid.tensors import encode_state_stream, frame, read_state_stream
from fedgrid.v1 import tensor_pb2

STATE = {
    "a": torch.arange(10, dtype=torch.float32),
    "empty": torch.zeros(0, 3),
    "b": torch.ones(2, 3, dtype=torch.int64),
}


def test_valid_names_pass_unchanged() -> None:
    assert check_name("mnist demo+v1.é", "job name") == "mnist demo+v1.é"
    assert check_version("1.10.0-rc.1+build.5") == "1.10.0-rc.1+build.5"
    assert check_alias("best-2") == "best-2"
    assert check_config_json("", "client config") == {}


def test_versions_order_by_semver_not_text() -> None:
    versions = ["1.9.0", "1.10.0", "1.10.0-rc.1", "0.9.12"]

    assert sorted(versions, key=version_key) == [
        "0.9.12",
        "1.9.0",
        "1.10.0-rc.1",
        "1.10.0",
    ]


@pytest.mark.parametrize("name", [" lead", "tail ", "zero\u200bwidth", "new\nline"])
def test_names_with_invisible_edges_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument):
        check_name(name, "job name")


def test_configs_must_be_json_objects() -> None:
    with pytest.raises(InvalidArgument, match="JSON object, not list"):
        check_config_json("[1, 2]", "server config")


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_check_accepts_what_the_codec_writes_in_any_chunking(chunk: int) -> None:
    data = b"".join(encode_state_stream(STATE, chunk_bytes=5))
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]

    passed = b"".join(checked_state_stream(pieces))

    assert passed == data
    assert [name for name, _ in read_state_stream(io.BytesIO(data))] == list(STATE)


def _part(**fields: object) -> bytes:
    return frame(tensor_pb2.StateChunk(**fields).SerializeToString())


def _header(name: str, shape: list[int]) -> bytes:
    header = tensor_pb2.TensorHeader(name=name, dtype=tensor_pb2.FLOAT32, shape=shape)
    return _part(header=header)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "holds no tensor"),
        (b"\x00\x00", "inside a frame"),
        (b"\xff\xff\xff\xff", "limit"),
        (_header("w", [2]) + _part(data=b"1234"), "inside tensor 'w'"),
        (_header("w", [1]) + _part(data=b"12345"), "more than its shape"),
        (_part(data=b"1234"), "before any tensor header"),
        (_header("w", [0]) + _header("w", [0]), "appears twice"),
        (_header("w", [-1]), "negative dimension"),
        (frame(b"\xff\xff\xff"), "not a StateChunk"),
    ],
)
def test_check_refuses_malformed_streams(data: bytes, message: str) -> None:
    check = StateStreamCheck()

    with pytest.raises(TensorError, match=message):
        check.feed(data)
        check.finish()
