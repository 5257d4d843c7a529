"""Object store on S3 or MinIO through the minio SDK."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, cast

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from fedgrid.errors import NotFound, StorageError
from fedgrid.objectstore.base import (
    DEFAULT_READ_BYTES,
    ObjectStore,
    StoredObject,
    validate_key,
)

logger = logging.getLogger(__name__)

# Multipart parts are held in memory one at a time; S3 needs at least 5 MiB.
PART_BYTES = 8 * 1024 * 1024
_MISSING = {"NoSuchKey", "NoSuchObject", "NotFound"}
_BACKEND_ERRORS = (MinioException, urllib3.exceptions.HTTPError, OSError)


class _HashingReader:
    """A read() view over an iterable of chunks that hashes what passes."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")
        self.digest = hashlib.sha256()
        self.size = 0
        self.failure: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        while not self._pending:
            try:
                chunk = next(self._chunks, None)
            except BaseException as exc:
                self.failure = exc
                raise
            if chunk is None:
                return b""
            self._pending = memoryview(chunk)
        count = len(self._pending) if size < 0 else min(size, len(self._pending))
        data = bytes(self._pending[:count])
        self._pending = self._pending[count:]
        self.digest.update(data)
        self.size += count
        return data


class _ResponseReader(io.RawIOBase):
    """A raw reader over a minio response that releases its connection."""

    def __init__(self, response: Any, key: str) -> None:
        self._response = response
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._response.read(len(view))
        except _BACKEND_ERRORS as exc:
            raise StorageError(f"cannot read object {self._key!r}: {exc}") from exc
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
            self._response.release_conn()
        super().close()


class S3ObjectStore(ObjectStore):
    """Objects in one bucket (created if missing); big writes go multipart."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str = "us-east-1",
        read_bytes: int = DEFAULT_READ_BYTES,
    ) -> None:
        self.bucket = bucket
        self._read_bytes = read_bytes
        self._client = Minio(
            endpoint,
            access_key=access_key or None,
            secret_key=secret_key or None,
            secure=secure,
            region=region,
        )
        try:
            if not self._client.bucket_exists(bucket):
                self._client.make_bucket(bucket)
                logger.info("[S3ObjectStore] created bucket=%s", bucket)
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StorageError(
                    f"cannot use bucket {bucket!r} at {endpoint}: {exc}"
                ) from exc
        except _BACKEND_ERRORS as exc:
            raise StorageError(
                f"cannot reach the object store at {endpoint}: {exc}"
            ) from exc

    def put(self, key: str, chunks: Iterable[bytes]) -> StoredObject:
        validate_key(key)
        reader = _HashingReader(chunks)
        try:
            # Unknown length: minio uploads multipart and aborts on failure, so
            # the object appears only once every part has arrived.
            self._client.put_object(
                self.bucket,
                key,
                cast(BinaryIO, reader),
                length=-1,
                part_size=PART_BYTES,
            )
        except _BACKEND_ERRORS as exc:
            if exc is reader.failure:
                raise  # the caller's chunks failed, not the store
            raise StorageError(f"cannot write object {key!r}: {exc}") from exc
        return StoredObject(size=reader.size, sha256=reader.digest.hexdigest())

    def get(self, key: str) -> Iterator[bytes]:
        reader = self.open(key)
        return self._stream(reader)

    def _stream(self, reader: BinaryIO) -> Iterator[bytes]:
        with reader:
            while chunk := reader.read(self._read_bytes):
                yield chunk

    def open(self, key: str) -> BinaryIO:
        validate_key(key)
        try:
            response = self._client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                raise NotFound(f"no object stored under {key!r}") from None
            raise StorageError(f"cannot open object {key!r}: {exc}") from exc
        except _BACKEND_ERRORS as exc:
            raise StorageError(f"cannot open object {key!r}: {exc}") from exc
        return io.BufferedReader(_ResponseReader(response, key), self._read_bytes)

    def delete(self, key: str) -> None:
        validate_key(key)
        try:
            self._client.remove_object(self.bucket, key)
        except _BACKEND_ERRORS as exc:
            raise StorageError(f"cannot delete object {key!r}: {exc}") from exc

    def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            self._client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return False
            raise StorageError(f"cannot look up object {key!r}: {exc}") from exc
        except _BACKEND_ERRORS as exc:
            raise StorageError(f"cannot look up object {key!r}: {exc}") from exc
        return True
