"""Object store on the local filesystem: the embedded default backend."""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from fedgrid.errors import NotFound, StorageError
from fedgrid.objectstore.base import (
    DEFAULT_READ_BYTES,
    ObjectStore,
    StoredObject,
    validate_key,
)

logger = logging.getLogger(__name__)


@contextmanager
def _translated(key: str, action: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise StorageError(f"cannot {action} object {key!r}: {exc}") from exc


class FileObjectStore(ObjectStore):
    """Each object is a file under root; writes go to a temp file, then rename."""

    def __init__(self, root: Path | str, read_bytes: int = DEFAULT_READ_BYTES) -> None:
        self.root = Path(root).resolve()
        self._read_bytes = read_bytes
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create object store at {self.root}: {exc}"
            ) from exc

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def put(self, key: str, chunks: Iterable[bytes]) -> StoredObject:
        target = self._path(key)
        # Temp names start with "." so no valid key can ever name one.
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        digest = hashlib.sha256()
        size = 0
        try:
            with _translated(key, "write"):
                target.parent.mkdir(parents=True, exist_ok=True)
                out = open(temp, "xb")  # noqa: SIM115 - the with below closes it
            with out:
                # Errors raised by the caller's chunks propagate untranslated.
                for chunk in chunks:
                    with _translated(key, "write"):
                        out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                with _translated(key, "write"):
                    out.flush()
                    os.fsync(out.fileno())
            with _translated(key, "write"):
                os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return StoredObject(size=size, sha256=digest.hexdigest())

    def get(self, key: str) -> Iterator[bytes]:
        reader = self.open(key)
        return self._stream(reader, key)

    def _stream(self, reader: BinaryIO, key: str) -> Iterator[bytes]:
        with reader:
            while True:
                try:
                    chunk = reader.read(self._read_bytes)
                except OSError as exc:
                    raise StorageError(f"cannot read object {key!r}: {exc}") from exc
                if not chunk:
                    return
                yield chunk

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise NotFound(f"no object stored under {key!r}") from None
        except OSError as exc:
            raise StorageError(f"cannot open object {key!r}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete object {key!r}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()
