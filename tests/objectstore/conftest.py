"""Object-store fixtures: every test runs against the file and S3 backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedgrid.objectstore import FileObjectStore, ObjectStore, S3ObjectStore


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """A fresh, empty object store of each backend."""
    if request.param == "file":
        yield FileObjectStore(tmp_path / "objects", read_bytes=64 * 1024)
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    yield S3ObjectStore(
        endpoint=endpoint,
        access_key="testing",
        secret_key="testing",
        bucket=f"objects-{uuid.uuid4().hex[:12]}",
        read_bytes=64 * 1024,
    )
