"""One suite for every object-store backend: atomic puts, streamed reads, keys."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedgrid.config import Settings
from fedgrid.errors import InvalidArgument, NotFound
from fedgrid.objectstore import (
    FileObjectStore,
    ObjectStore,
    S3ObjectStore,
    object_store_from_settings,
)


def test_put_then_get_round_trips_bytes_size_and_digest(store: ObjectStore) -> None:
    chunks = [b"alpha", b"", b"beta" * 1000, os.urandom(70_000)]
    expected = b"".join(chunks)

    stored = store.put("jobs/abc/model", iter(chunks))

    assert stored.size == len(expected)
    assert stored.sha256 == hashlib.sha256(expected).hexdigest()
    assert b"".join(store.get("jobs/abc/model")) == expected
    assert store.exists("jobs/abc/model")


def test_get_streams_in_bounded_chunks(store: ObjectStore) -> None:
    data = os.urandom(300_000)
    store.put("big", [data])

    sizes = [len(chunk) for chunk in store.get("big")]

    assert sum(sizes) == len(data)
    assert len(sizes) >= 5
    assert max(sizes) <= 64 * 1024


def test_open_gives_a_reader_for_streaming_parsers(store: ObjectStore) -> None:
    store.put("a/b", [b"0123456789"])

    with store.open("a/b") as reader:
        first = reader.read(4)
        rest = reader.read()

    assert (first, rest) == (b"0123", b"456789")


def test_empty_object(store: ObjectStore) -> None:
    stored = store.put("empty", [])

    assert stored.size == 0
    assert stored.sha256 == hashlib.sha256(b"").hexdigest()
    assert b"".join(store.get("empty")) == b""


def test_put_replaces_an_existing_object(store: ObjectStore) -> None:
    store.put("k", [b"old"])
    store.put("k", [b"new!"])

    assert b"".join(store.get("k")) == b"new!"


def test_failed_write_leaves_nothing_visible(store: ObjectStore) -> None:
    def aborted() -> Iterator[bytes]:
        yield os.urandom(6 * 1024 * 1024)
        yield os.urandom(6 * 1024 * 1024)
        raise ConnectionError("sender went away")

    with pytest.raises(ConnectionError):
        store.put("half/written", aborted())

    assert not store.exists("half/written")
    with pytest.raises(NotFound):
        store.get("half/written")


def test_failed_overwrite_keeps_the_previous_object(store: ObjectStore) -> None:
    store.put("kept", [b"complete"])

    def aborted() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionError("sender went away")

    with pytest.raises(ConnectionError):
        store.put("kept", aborted())

    assert b"".join(store.get("kept")) == b"complete"


def test_missing_objects_raise_not_found_eagerly(store: ObjectStore) -> None:
    with pytest.raises(NotFound, match="nothing/here"):
        store.get("nothing/here")
    with pytest.raises(NotFound):
        store.open("nothing/here")
    assert not store.exists("nothing/here")


def test_delete_removes_and_tolerates_missing(store: ObjectStore) -> None:
    store.put("gone", [b"x"])

    store.delete("gone")
    store.delete("gone")

    assert not store.exists("gone")


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/abs/path",
        "a/../b",
        "..",
        "a//b",
        "a/./b",
        ".hidden",
        "sp ace",
        "a\\b",
        "ünï",
        "x" * 600,
        "a/b/",
    ],
)
def test_unsafe_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidArgument):
        store.put(key, [b"x"])
    with pytest.raises(InvalidArgument):
        store.exists(key)


def test_file_store_keeps_objects_inside_its_root(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path / "root")

    store.put("jobs/1/model.bin", [b"x"])

    assert (tmp_path / "root" / "jobs" / "1" / "model.bin").read_bytes() == b"x"
    assert [p.name for p in (tmp_path / "root" / "jobs" / "1").iterdir()] == [
        "model.bin"
    ]


def test_factory_builds_the_configured_backend(
    tmp_path: Path, s3_endpoint: str
) -> None:
    file_store = object_store_from_settings(
        Settings(object_store="file", object_store_path=tmp_path / "o")
    )
    s3_store = object_store_from_settings(
        Settings(
            object_store="s3",
            s3_endpoint=s3_endpoint,
            s3_access_key="testing",
            s3_secret_key="testing",
            s3_bucket="factory-bucket",
        )
    )

    assert isinstance(file_store, FileObjectStore)
    assert isinstance(s3_store, S3ObjectStore)
    s3_store.put("probe", [b"ok"])
    assert b"".join(s3_store.get("probe")) == b"ok"
