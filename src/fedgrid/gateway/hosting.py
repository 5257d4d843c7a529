"""Hosting a job from an admin upload: validate everything, then store and register."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, BinaryIO

from fedgrid import tensors
from fedgrid.errors import ConfigError, InvalidArgument, PlanError
from fedgrid.job import PROTOCOLS, TRAINING_PLAN
from fedgrid.jobconfig import ServerConfig, validate_client_config
from fedgrid.modelstore.client import ModelStoreClient
from fedgrid.modelstore.names import check_name, check_version
from fedgrid.secagg.averaging import refuse_averaging_plan
from fedgrid.v1 import model_store_pb2 as pb

logger = logging.getLogger(__name__)

MAX_PLAN_BYTES = 64 * 1024 * 1024
MAX_PROTOCOL_BYTES = 1024 * 1024
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
READ_BYTES = 1024 * 1024

RegisterJob = Callable[[pb.Job, ServerConfig], object]


@dataclass
class JobUpload:
    """A checked upload: the header, the model spooled to disk, plans, protocols."""

    header: pb.HostJobHeader
    server_config: ServerConfig
    model: IO[bytes]
    plans: dict[str, bytes] = field(default_factory=dict)
    torchscript: dict[str, bytes] = field(default_factory=dict)
    protocols: dict[str, bytes] = field(default_factory=dict)

    def blobs(self) -> Iterator[tuple[pb.BlobRef, Iterable[bytes]]]:
        """The blobs in the order the model store takes them."""
        self.model.seek(0)
        yield pb.BlobRef(kind=pb.BlobRef.MODEL), _file_chunks(self.model)
        for name, data in self.plans.items():
            yield pb.BlobRef(kind=pb.BlobRef.PLAN, name=name, format="ops"), [data]
        for name, data in self.torchscript.items():
            ref = pb.BlobRef(kind=pb.BlobRef.PLAN, name=name, format="torchscript")
            yield ref, [data]
        for name, data in self.protocols.items():
            yield pb.BlobRef(kind=pb.BlobRef.PROTOCOL, name=name), [data]


def _file_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(READ_BYTES):
        yield chunk


def _parse_part(payload: bytes, index: int) -> pb.HostJobPart:
    part = pb.HostJobPart()
    try:
        part.ParseFromString(payload)
    except Exception as exc:  # protobuf raises DecodeError and others
        raise InvalidArgument(
            f"part {index} of the upload is not a HostJobPart"
        ) from exc
    return part


def check_header(header: pb.HostJobHeader) -> ServerConfig:
    """Validate name, version and both configs; errors name the bad field."""
    check_name(header.name, "job name")
    check_version(header.version)
    server_config = ServerConfig.from_json(header.server_config_json or "{}")
    text = header.client_config_json.strip() or "{}"
    try:
        client_config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"client_config is not valid JSON: {exc}") from exc
    validate_client_config(client_config, server_config)
    return server_config


def check_protocol(name: str, data: bytes) -> None:
    """A protocol is a built-in named with its parameters as a JSON object."""
    check_name(name, "protocol name")
    if name not in PROTOCOLS:
        raise InvalidArgument(
            f"protocol {name!r} is not a built-in; the grid runs only "
            f"{list(PROTOCOLS)}, with parameters, never uploaded code"
        )
    if len(data) > MAX_PROTOCOL_BYTES:
        raise InvalidArgument(f"protocol {name!r} is larger than {MAX_PROTOCOL_BYTES}")
    try:
        parameters = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(
            f"protocol {name!r} must be its parameters as a JSON object; archives "
            "and code are refused"
        ) from exc
    if not isinstance(parameters, dict):
        raise InvalidArgument(f"protocol {name!r} parameters must be a JSON object")


def check_plan(name: str, data: bytes, targets: Iterable[str]) -> bytes | None:
    """Decode an `ops` plan, check it runs on every target; TorchScript if asked."""
    from fedgrid.plans.plan import Plan

    try:
        plan = Plan.from_bytes(data)
        plan.validate(targets)
    except PlanError as exc:
        raise PlanError(f"plan {name!r}: {exc}") from exc
    if "torchscript" not in targets:
        return None
    try:
        return plan.to_torchscript()
    except PlanError as exc:
        raise PlanError(f"plan {name!r} cannot become TorchScript: {exc}") from exc


def check_model(handle: IO[bytes]) -> int:
    """Read the spooled model as a state stream; return its tensor count."""
    handle.seek(0)
    count = 0
    for _ in tensors.read_state_stream(handle):  # type: ignore[arg-type]
        count += 1
    if count == 0:
        raise InvalidArgument("the MODEL blob holds no tensors")
    return count


def read_upload(body: BinaryIO) -> JobUpload:
    """Read a framed HostJobPart stream, checking each part as it comes."""
    frames = enumerate(tensors.read_frames(body))
    first = next(frames, None)
    if first is None:
        raise InvalidArgument("the upload is empty; send a HostJobPart stream")
    opening = _parse_part(first[1], 0)
    if opening.WhichOneof("part") != "header":
        raise InvalidArgument("the upload must start with a HostJobHeader part")
    header = opening.header
    server_config = check_header(header)
    model = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
    upload = JobUpload(header=header, server_config=server_config, model=model)
    try:
        _read_blobs(frames, upload)
    except BaseException:
        model.close()
        raise
    return upload


def _read_blobs(frames: Iterator[tuple[int, bytes]], upload: JobUpload) -> None:
    current: pb.BlobRef | None = None
    buffer = bytearray()
    has_model = False

    def close_blob() -> None:
        if current is None or current.kind == pb.BlobRef.MODEL:
            return
        if current.kind == pb.BlobRef.PLAN:
            upload.plans[current.name] = bytes(buffer)
        else:
            upload.protocols[current.name] = bytes(buffer)

    for index, payload in frames:
        part = _parse_part(payload, index)
        kind = part.WhichOneof("part")
        if kind == "blob":
            close_blob()
            current, buffer = _open_blob(part.blob, upload, has_model), bytearray()
            has_model = has_model or current.kind == pb.BlobRef.MODEL
        elif kind == "data":
            if current is None:
                raise InvalidArgument(f"part {index}: data before any BlobRef part")
            if current.kind == pb.BlobRef.MODEL:
                upload.model.write(part.data)
                continue
            buffer.extend(part.data)
            limit = (
                MAX_PLAN_BYTES
                if current.kind == pb.BlobRef.PLAN
                else MAX_PROTOCOL_BYTES
            )
            if len(buffer) > limit:
                raise InvalidArgument(
                    f"blob {current.name!r} is larger than {limit} bytes"
                )
        else:
            raise InvalidArgument(f"part {index}: a second header or an empty part")
    close_blob()
    if not has_model:
        raise InvalidArgument("the upload has no MODEL blob (the initial model)")


def _open_blob(ref: pb.BlobRef, upload: JobUpload, has_model: bool) -> pb.BlobRef:
    if ref.kind == pb.BlobRef.MODEL:
        if has_model:
            raise InvalidArgument("the upload has two MODEL blobs")
        return ref
    if ref.kind == pb.BlobRef.PLAN:
        check_name(ref.name, "plan name")
        if ref.format != "ops":
            raise InvalidArgument(
                f"plan {ref.name!r} has format {ref.format!r}; send plans as 'ops' "
                "only: the grid makes TorchScript itself and never accepts archives"
            )
        if ref.name in upload.plans:
            raise InvalidArgument(f"plan {ref.name!r} appears twice")
        return ref
    if ref.kind == pb.BlobRef.PROTOCOL:
        check_name(ref.name, "protocol name")
        if ref.name in upload.protocols:
            raise InvalidArgument(f"protocol {ref.name!r} appears twice")
        return ref
    raise InvalidArgument(
        "a BlobRef part must be of kind MODEL, PLAN or PROTOCOL in a job upload"
    )


class JobHost:
    """Checks an upload whole, then streams it to the model store and registers it."""

    def __init__(self, model_store: ModelStoreClient, register: RegisterJob) -> None:
        self._model_store = model_store
        self._register = register

    def host(self, body: BinaryIO) -> pb.Job:
        """Host the uploaded job; checkpoint 1 is its initial model."""
        upload = read_upload(body)
        try:
            self._check(upload)
            job = self._model_store.host_job(upload.header, upload.blobs())
        finally:
            upload.model.close()
        self._register(job, upload.server_config)
        logger.info(
            "[Gateway.HostJob] hosted job=%s version=%s id=%s plans=%s",
            job.name,
            job.version,
            job.id,
            len(upload.plans),
        )
        return job

    def _check(self, upload: JobUpload) -> None:
        if TRAINING_PLAN not in upload.plans:
            raise InvalidArgument(
                f"the upload has no {TRAINING_PLAN!r} plan (it has "
                f"{sorted(upload.plans)}); workers would be admitted with nothing "
                "to run"
            )
        check_model(upload.model)
        targets = upload.server_config.targets
        for name, data in upload.plans.items():
            exported = check_plan(name, data, targets)
            if exported is not None:
                upload.torchscript[name] = exported
        for name, data in upload.protocols.items():
            check_protocol(name, data)
        averaging = upload.header.averaging_plan
        refuse_averaging_plan(upload.server_config, averaging)
        if averaging and averaging not in upload.plans:
            raise InvalidArgument(
                f"averaging_plan {averaging!r} is not one of the uploaded plans "
                f"{sorted(upload.plans)}"
            )
