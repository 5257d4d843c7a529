"""The object-store interface every blob backend implements, and key rules."""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from fedgrid.errors import InvalidArgument

MAX_KEY_LENGTH = 512
DEFAULT_READ_BYTES = 1024 * 1024

# One path segment: starts with a letter or digit, then letters, digits, `.`,
# `_` or `-`. Backends may use names starting with `.` for their own temp files.
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class StoredObject:
    """What a completed write stored: its size in bytes and hex sha256."""

    size: int
    sha256: str


def validate_key(key: str) -> str:
    """Return key unchanged, or raise InvalidArgument saying what is wrong."""
    if not key:
        raise InvalidArgument("object key is empty; derive it from an id")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidArgument(
            f"object key is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}"
        )
    if key.startswith("/"):
        raise InvalidArgument(f"object key {key!r} is absolute; keys are relative")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidArgument(
                f"object key {key!r} has an empty, '.' or '..' segment"
            )
        if not _SEGMENT.match(segment):
            raise InvalidArgument(
                f"object key {key!r} has segment {segment!r}; use letters, digits, "
                "'.', '_' and '-', starting with a letter or digit"
            )
    return key


class ObjectStore(ABC):
    """Named blobs written atomically and read as streams."""

    @abstractmethod
    def put(self, key: str, chunks: Iterable[bytes]) -> StoredObject:
        """Store the concatenated chunks under key, all or nothing.

        If chunks raises or the write fails, nothing new is visible under key
        and the error propagates. An existing object under key is replaced.
        """

    @abstractmethod
    def get(self, key: str) -> Iterator[bytes]:
        """Stream the object's bytes; raises NotFound before the first chunk."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A binary reader over the object, for parsers that read as they go."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under key."""

    def delete_quietly(self, keys: Iterable[str]) -> list[str]:
        """Delete several objects for clean-up; return the keys that failed."""
        failed: list[str] = []
        for key in keys:
            try:
                self.delete(key)
            except Exception:  # clean-up must not hide the error that caused it
                failed.append(key)
        return failed


def verified(
    chunks: Iterable[bytes], size: int, digest: str, on_mismatch: Callable[[int], None]
) -> Iterator[bytes]:
    """Pass chunks through, then check their size and sha256.

    On a mismatch, on_mismatch(bytes seen) is called; it is expected to raise.
    """
    seen = hashlib.sha256()
    total = 0
    for chunk in chunks:
        seen.update(chunk)
        total += len(chunk)
        yield chunk
    if total != size or seen.hexdigest() != digest:
        on_mismatch(total)
