"""Model-store fixtures: a real server in-process over each object backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import torch
from minio import Minio

from fedgrid.config import Settings
from fedgrid.modelstore.client import ModelStoreClient
from fedgrid.objectstore import ObjectStore, object_store_from_settings
from fedgrid.tensors import encode_state_stream
from fedgrid.v1 import model_store_pb2 as pb
from fedgrid_model_store.server import ModelStoreServer, build_server

CHUNK_BYTES = 64 * 1024


@dataclass
class Stack:
    """A running model store, a client of it and its object store."""

    settings: Settings
    server: ModelStoreServer
    client: ModelStoreClient
    objects: ObjectStore


@pytest.fixture(params=["file", "s3"])
def stack(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> Iterator[Stack]:
    """The model store served on a free port, backed by files or by S3 (moto)."""
    if request.param == "s3":
        settings = make_settings(
            object_store="s3",
            s3_endpoint=request.getfixturevalue("s3_endpoint"),
            s3_access_key="testing",
            s3_secret_key="testing",
            s3_bucket=f"models-{uuid.uuid4().hex[:12]}",
            chunk_bytes=CHUNK_BYTES,
        )
    else:
        settings = make_settings(chunk_bytes=CHUNK_BYTES)
    server = build_server(settings)
    server.start()
    client = ModelStoreClient(server.service.address, chunk_bytes=CHUNK_BYTES)
    try:
        yield Stack(settings, server, client, object_store_from_settings(settings))
    finally:
        client.close()
        server.stop(grace=1.0)


@pytest.fixture
def job_name() -> str:
    """A job name no other test uses (the database is shared by the session)."""
    return f"job-{uuid.uuid4().hex[:10]}"


def model_state(seed: int = 0, width: int = 8) -> dict[str, torch.Tensor]:
    """A small model state, different per seed."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "fc.weight": torch.randn(width, 4, generator=generator),
        "fc.bias": torch.randn(width, generator=generator),
        "steps": torch.tensor([seed], dtype=torch.int64),
    }


def model_bytes(seed: int = 0, width: int = 8) -> bytes:
    """The state-stream bytes of model_state(seed)."""
    return b"".join(encode_state_stream(model_state(seed, width), CHUNK_BYTES))


def host(
    client: ModelStoreClient,
    name: str,
    version: str = "1.0.0",
    model: bytes | None = None,
    averaging_plan: str = "",
) -> pb.Job:
    """Host a job with a model, a training plan in both formats and a protocol."""
    header = pb.HostJobHeader(
        name=name,
        version=version,
        client_config_json='{"batch_size": 32, "lr": 0.1}',
        server_config_json='{"max_workers": 5}',
        averaging_plan=averaging_plan,
    )
    blobs = [
        (pb.BlobRef(kind=pb.BlobRef.MODEL), [model or model_bytes()]),
        (pb.BlobRef(kind=pb.BlobRef.PLAN, name="train", format="ops"), [b"ops-train"]),
        (
            pb.BlobRef(kind=pb.BlobRef.PLAN, name="train", format="torchscript"),
            [b"ts-train"],
        ),
        (pb.BlobRef(kind=pb.BlobRef.PROTOCOL, name="secagg+"), [b'{"k": 3}']),
    ]
    return client.host_job(header, blobs)


def stored_objects(stack: Stack, prefix: str = "") -> set[str]:
    """Every object (temp files included) in the stack's store under prefix."""
    settings = stack.settings
    if settings.object_store == "file":
        root = settings.object_store_path
        found = (p for p in root.rglob("*") if p.is_file())
        keys = {p.relative_to(root).as_posix() for p in found}
        return {key for key in keys if key.startswith(prefix)}
    client = Minio(
        settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        secure=False,
        region=settings.s3_region,
    )
    listing = client.list_objects(settings.s3_bucket, prefix, recursive=True)
    return {str(item.object_name) for item in listing}
