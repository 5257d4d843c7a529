"""Blob storage behind one small interface: local files or S3/MinIO."""

from __future__ import annotations

from fedgrid.config import Settings
from fedgrid.objectstore.base import ObjectStore, StoredObject, validate_key, verified
from fedgrid.objectstore.file_store import FileObjectStore
from fedgrid.objectstore.s3_store import S3ObjectStore

__all__ = [
    "FileObjectStore",
    "ObjectStore",
    "S3ObjectStore",
    "StoredObject",
    "object_store_from_settings",
    "validate_key",
    "verified",
]


def object_store_from_settings(settings: Settings) -> ObjectStore:
    """The backend named by FEDGRID_OBJECT_STORE, configured from settings."""
    if settings.object_store == "s3":
        return S3ObjectStore(
            endpoint=settings.require("s3_endpoint"),
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            bucket=settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            read_bytes=settings.chunk_bytes,
        )
    root = settings.object_store_path or settings.var_dir / "objects"
    return FileObjectStore(root, read_bytes=settings.chunk_bytes)
