"""The model store's operations in plain Python, over a repository and blobs."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterable, Iterator

from fedgrid.errors import AlreadyExists, DataLoss, InvalidArgument, NotFound
from fedgrid.modelstore.names import (
    LATEST,
    check_alias,
    check_cycle_id,
    check_format,
    check_name,
    check_version,
)
from fedgrid.modelstore.records import (
    BlobKind,
    BlobRecord,
    BlobSpec,
    CheckpointHeader,
    CheckpointRecord,
    JobHeader,
    JobRecord,
)
from fedgrid.modelstore.repository import Repository
from fedgrid.modelstore.state_check import checked_state_stream
from fedgrid.objectstore import ObjectStore, verified

logger = logging.getLogger(__name__)

Blobs = Iterable[tuple[BlobSpec, Iterable[bytes]]]


def _job_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument(
            f"job id {value[:40]!r} is not a UUID; use the id a job listing shows"
        ) from None


class ModelStore:
    """Hosts jobs and checkpoints; blobs go to objects, metadata to repository."""

    def __init__(self, repository: Repository, objects: ObjectStore) -> None:
        self._repository = repository
        self._objects = objects

    # --- jobs ----------------------------------------------------------

    def host_job(self, header: JobHeader, blobs: Blobs) -> JobRecord:
        """Store a job's blobs, then its metadata and checkpoint 1, all or nothing."""
        check_name(header.name, "job name")
        check_version(header.version)
        if header.averaging_plan:
            check_name(header.averaging_plan, "averaging plan")
        if self._repository.job_exists(header.name, header.version):
            raise _already_hosted(header)

        job_id = str(uuid.uuid4())
        checkpoint_id = str(uuid.uuid4())
        written: list[str] = []
        try:
            plans: dict[tuple[str, str], BlobRecord] = {}
            protocols: dict[str, BlobRecord] = {}
            model: BlobRecord | None = None
            server_state: BlobRecord | None = None
            for spec, data in blobs:
                if spec.kind is BlobKind.MODEL:
                    _refuse_second(model, "MODEL")
                    key = f"checkpoints/{job_id}/{checkpoint_id}/model"
                    model = self._put_model(key, data, written)
                elif spec.kind is BlobKind.SERVER_STATE:
                    _refuse_second(server_state, "SERVER_STATE")
                    key = f"checkpoints/{job_id}/{checkpoint_id}/server-state"
                    server_state = self._put(key, data, written)
                elif spec.kind is BlobKind.PLAN:
                    name = check_name(spec.name, "plan name")
                    plan_id = (name, check_format(spec.format))
                    if plan_id in plans:
                        raise InvalidArgument(
                            f"plan {name!r} in format {spec.format!r} is sent twice"
                        )
                    key = f"jobs/{job_id}/plans/{uuid.uuid4()}"
                    plans[plan_id] = self._put(key, data, written)
                else:
                    name = check_name(spec.name, "protocol name")
                    if name in protocols:
                        raise InvalidArgument(f"protocol {name!r} is sent twice")
                    key = f"jobs/{job_id}/protocols/{uuid.uuid4()}"
                    protocols[name] = self._put(key, data, written)

            if model is None:
                raise InvalidArgument(
                    "the job has no MODEL blob; send the initial model state"
                )
            plan_names = {name for name, _ in plans}
            if header.averaging_plan and header.averaging_plan not in plan_names:
                raise InvalidArgument(
                    f"averaging plan {header.averaging_plan!r} is not among the "
                    f"plans sent ({', '.join(sorted(plan_names)) or 'none'})"
                )
            job = self._repository.insert_job(
                job_id,
                header,
                [(name, fmt, blob) for (name, fmt), blob in plans.items()],
                list(protocols.items()),
                checkpoint_id,
                model,
                server_state,
            )
        except BaseException:
            self._discard(written)
            raise
        logger.info(
            "[ModelStore.HostJob] job=%s version=%s id=%s plans=%s model_bytes=%s",
            job.name,
            job.version,
            job.id,
            len(plans),
            model.size,
        )
        return job

    def get_job(self, name: str, version: str = "") -> JobRecord:
        """A job by name and version; an empty version means the newest."""
        check_name(name, "job name")
        if version:
            check_version(version)
        return self._repository.find_job(name, version)

    def get_job_by_id(self, job_id: str) -> JobRecord:
        """A job by id."""
        return self._repository.job_by_id(_job_id(job_id))

    def list_jobs(self, name: str = "") -> list[JobRecord]:
        """All jobs, or every version of one name, ordered by name and semver."""
        if name:
            check_name(name, "job name")
        return self._repository.list_jobs(name)

    # --- reads ---------------------------------------------------------

    def open_checkpoint(
        self,
        name: str,
        version: str = "",
        number: int | None = None,
        alias: str | None = None,
    ) -> tuple[CheckpointRecord, Iterator[bytes]]:
        """A checkpoint and its bytes, checked against the digest as they stream."""
        checkpoint = self._checkpoint(name, version, number, alias)
        what = f"checkpoint {checkpoint.number} of job {name!r}"
        return checkpoint, self._read(checkpoint.blob, what)

    def open_server_state(
        self,
        name: str,
        version: str = "",
        number: int | None = None,
        alias: str | None = None,
    ) -> tuple[CheckpointRecord, Iterator[bytes]]:
        """The server state stored with a checkpoint."""
        checkpoint = self._checkpoint(name, version, number, alias)
        blob = self._repository.server_state(checkpoint.id)
        if blob is None:
            raise NotFound(
                f"checkpoint {checkpoint.number} of job {name!r} has no server "
                "state; only aggregations with a stateful optimizer store one"
            )
        what = f"server state of checkpoint {checkpoint.number} of job {name!r}"
        return checkpoint, self._read(blob, what)

    def open_plan(
        self, name: str, version: str, plan: str, plan_format: str
    ) -> Iterator[bytes]:
        """A plan's bytes in one format."""
        job = self.get_job(name, version)
        check_name(plan, "plan name")
        blob = self._repository.plan(job, plan, plan_format)
        return self._read(blob, f"plan {plan!r} ({plan_format}) of job {name!r}")

    def open_protocol(self, name: str, version: str, protocol: str) -> Iterator[bytes]:
        """A protocol's bytes."""
        job = self.get_job(name, version)
        check_name(protocol, "protocol name")
        blob = self._repository.protocol(job, protocol)
        return self._read(blob, f"protocol {protocol!r} of job {name!r}")

    def list_checkpoints(self, name: str, version: str = "") -> list[CheckpointRecord]:
        """A job's checkpoints in number order."""
        job = self.get_job(name, version)
        return self._repository.list_checkpoints(job.id)

    # --- checkpoints ---------------------------------------------------

    def create_checkpoint(
        self, header: CheckpointHeader, blobs: Blobs
    ) -> CheckpointRecord:
        """Store the next checkpoint; a cycle that made one already gets it back."""
        job_id = _job_id(header.job_id)
        check_cycle_id(header.cycle_id)
        aliases = [check_alias(alias) for alias in header.aliases]
        for metric, value in header.metrics.items():
            if not math.isfinite(value):
                raise InvalidArgument(f"metric {metric!r} is {value}; send a number")
        self._repository.job_by_id(job_id)
        existing = self._repository.checkpoint_by_cycle(job_id, header.cycle_id)
        if existing is not None:
            logger.info(
                "[ModelStore.CreateCheckpoint] repeated job=%s cycle=%s number=%s",
                job_id,
                header.cycle_id,
                existing.number,
            )
            return existing

        checkpoint_id = str(uuid.uuid4())
        written: list[str] = []
        try:
            model: BlobRecord | None = None
            server_state: BlobRecord | None = None
            for spec, data in blobs:
                if spec.kind is BlobKind.MODEL:
                    _refuse_second(model, "MODEL")
                    key = f"checkpoints/{job_id}/{checkpoint_id}/model"
                    model = self._put_model(key, data, written)
                elif spec.kind is BlobKind.SERVER_STATE:
                    _refuse_second(server_state, "SERVER_STATE")
                    key = f"checkpoints/{job_id}/{checkpoint_id}/server-state"
                    server_state = self._put(key, data, written)
                else:
                    raise InvalidArgument(
                        f"a checkpoint takes MODEL and SERVER_STATE blobs, not "
                        f"{spec.kind.name}"
                    )
            if model is None:
                raise InvalidArgument("the checkpoint has no MODEL blob; send one")
            checkpoint, created = self._repository.add_checkpoint(
                job_id,
                checkpoint_id,
                header.cycle_id,
                model,
                server_state,
                dict(header.metrics),
                aliases,
            )
        except BaseException:
            self._discard(written)
            raise
        if not created:
            self._discard(written)  # a concurrent call for this cycle won
        logger.info(
            "[ModelStore.CreateCheckpoint] job=%s cycle=%s number=%s created=%s",
            job_id,
            header.cycle_id,
            checkpoint.number,
            created,
        )
        return checkpoint

    def set_alias(
        self, name: str, version: str, number: int, alias: str
    ) -> CheckpointRecord:
        """Point alias at checkpoint number of the job; `latest` is not movable."""
        check_alias(alias)
        if alias == LATEST:
            raise InvalidArgument(
                f"alias {LATEST!r} always names the newest checkpoint and moves by "
                "itself; choose another alias such as 'stable'"
            )
        job = self.get_job(name, version)
        checkpoint = self._repository.set_alias(job, number, alias)
        logger.info(
            "[ModelStore.SetAlias] job=%s version=%s alias=%s number=%s",
            job.name,
            job.version,
            alias,
            number,
        )
        return checkpoint

    # --- helpers -------------------------------------------------------

    def _checkpoint(
        self, name: str, version: str, number: int | None, alias: str | None
    ) -> CheckpointRecord:
        if alias is not None:
            check_alias(alias)
        job = self.get_job(name, version)
        return self._repository.checkpoint(job, number, alias)

    def _put(self, key: str, data: Iterable[bytes], written: list[str]) -> BlobRecord:
        written.append(key)
        stored = self._objects.put(key, data)
        return BlobRecord(object_key=key, digest=stored.sha256, size=stored.size)

    def _put_model(
        self, key: str, data: Iterable[bytes], written: list[str]
    ) -> BlobRecord:
        try:
            return self._put(key, checked_state_stream(data), written)
        except InvalidArgument as exc:
            raise InvalidArgument(
                f"the model is not a valid state stream ({exc}); encode it with "
                "fedgrid.tensors.encode_state_stream"
            ) from exc

    def _read(self, blob: BlobRecord, what: str) -> Iterator[bytes]:
        try:
            chunks = self._objects.get(blob.object_key)
        except NotFound as exc:
            raise DataLoss(
                f"the bytes of {what} are missing from the object store; restore "
                "them from a backup or push the job again"
            ) from exc
        return _verified(chunks, blob, what)

    def _discard(self, keys: list[str]) -> None:
        failed = self._objects.delete_quietly(keys)
        if failed:
            logger.warning("[ModelStore] orphan blobs left keys=%s", failed)


def _verified(chunks: Iterator[bytes], blob: BlobRecord, what: str) -> Iterator[bytes]:
    def mismatch(size: int) -> None:
        logger.error(
            "[ModelStore] digest mismatch key=%s size=%s expected_size=%s",
            blob.object_key,
            size,
            blob.size,
        )
        raise DataLoss(
            f"the stored bytes of {what} no longer match their digest; restore "
            "them from a backup or push the job again"
        )

    return verified(chunks, blob.size, blob.digest, mismatch)


def _refuse_second(found: BlobRecord | None, kind: str) -> None:
    if found is not None:
        raise InvalidArgument(f"a {kind} blob is sent twice; send it once")


def _already_hosted(header: JobHeader) -> AlreadyExists:
    return AlreadyExists(
        f"job {header.name!r} version {header.version} is already hosted; "
        "push a new version"
    )
