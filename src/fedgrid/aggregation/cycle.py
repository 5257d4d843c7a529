"""One cycle's aggregation, from its reports to a stored checkpoint, exactly once.

Plain Python with its clients passed in; the Celery tasks only call it. A
retried or duplicated run is harmless: a checkpoint already made for the
cycle is found and reported again, and CreateCheckpoint takes the cycle id as
its idempotency key.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fedgrid.aggregation.secure import MASK_JOBS_PER_TASK, SecurePlan, SecureSums
from fedgrid.aggregation.sharding import (
    Shard,
    delete_partials,
    read_partials,
    split,
    write_partial,
)
from fedgrid.aggregation.sources import report_inputs
from fedgrid.averaging import (
    AveragingFailed,
    AveragingResult,
    ModelLayout,
    WeightedSum,
    average,
    finish_linear,
)
from fedgrid.averaging.engine import fold_options
from fedgrid.averaging.optimizers import LINEAR, STATEFUL
from fedgrid.averaging.planned import average_with_plan
from fedgrid.cycles.client import CycleManagerClient
from fedgrid.errors import (
    ConfigError,
    Conflict,
    DataLoss,
    InvalidArgument,
    NotFound,
    PlanError,
)
from fedgrid.jobconfig import AveragingConfig, ServerConfig
from fedgrid.modelstore.client import ModelStoreClient
from fedgrid.objectstore import ObjectStore
from fedgrid.plans import Plan
from fedgrid.privacy.mechanism import PrivateAveraging, private_averaging
from fedgrid.privacy.noise import NoiseSource
from fedgrid.secagg.averaging import finish_secure, secure_config
from fedgrid.secagg.rounds import SecAggRounds
from fedgrid.tensors import encode_state_stream, load_state_stream
from fedgrid.v1 import cycle_manager_pb2, model_store_pb2

logger = logging.getLogger(__name__)

# Errors no retry can fix: the cycle is marked failed with the message.
PERMANENT = (
    AveragingFailed,
    InvalidArgument,
    NotFound,
    DataLoss,
    ConfigError,
    PlanError,
)
PLAN_FORMAT = "ops"


class _UnknownCycle(NotFound):
    """The cycle manager does not know the cycle."""


@dataclass(frozen=True)
class Outcome:
    """How a run ended: stored, already_stored, failed, dropped or sharded.

    A secure cycle's unmasking split across tasks ends as "masks_split" with
    the mask jobs of each part (JSON, for the tasks).
    """

    status: str
    checkpoint_number: int = 0
    reason: str = ""
    reports_used: int = 0
    reports_excluded: int = 0
    shards: tuple[Shard, ...] = ()
    mask_parts: tuple[list[list[Any]], ...] = ()
    mask_words: int = 0


@dataclass
class _Cycle:
    job: model_store_pb2.Job
    config: AveragingConfig
    reports: list[cycle_manager_pb2.StoredReport]
    cycle_id: str
    checkpoint_number: int
    privacy: PrivateAveraging | None = None
    secure: bool = False


class CycleAggregator:
    """Aggregates cycles using the model store, cycle manager and object store."""

    def __init__(
        self,
        models: ModelStoreClient,
        cycles: CycleManagerClient,
        objects: ObjectStore,
        chunk_bytes: int,
        max_report_bytes: int,
        spool_dir: Path | None = None,
        hold: Callable[[str], None] | None = None,
        noise: NoiseSource | None = None,
        rounds: SecAggRounds | None = None,
        mask_jobs_per_task: int = MASK_JOBS_PER_TASK,
    ) -> None:
        self.models = models
        self.cycles = cycles
        self.objects = objects
        self.chunk_bytes = chunk_bytes
        self.max_report_bytes = max_report_bytes
        self.spool_dir = spool_dir
        self._hold = hold
        self._noise = noise  # None: the secure default of fedgrid.privacy
        self._secure = None if rounds is None else SecureSums(rounds, objects)
        self.mask_jobs_per_task = mask_jobs_per_task

    # --- entry points ----------------------------------------------------

    def aggregate(self, job_id: str, cycle_id: str, checkpoint_number: int) -> Outcome:
        """Average the cycle, or say it must be sharded; fail it for good reasons."""
        return self._guarded(
            cycle_id, lambda: self._aggregate(job_id, cycle_id, checkpoint_number)
        )

    def sum_shard(
        self, job_id: str, cycle_id: str, checkpoint_number: int, shard: Shard
    ) -> Outcome:
        """Sum one shard of reports into a partial sum in the object store."""

        def run() -> Outcome:
            cycle = self._load(job_id, cycle_id, checkpoint_number)
            layout = ModelLayout.of(self._checkpoint(cycle))
            inputs = report_inputs(
                cycle.reports[shard.start : shard.stop],
                self.objects,
                self.max_report_bytes,
            )
            partial = WeightedSum(layout)
            partial.fold_reports(
                inputs, *fold_options(cycle.config.method, cycle.privacy)
            )
            write_partial(
                self.objects, cycle_id, shard.index, partial, self.chunk_bytes
            )
            logger.info(
                "[Aggregator.SumShard] cycle=%s shard=%d used=%d excluded=%d",
                cycle_id,
                shard.index,
                partial.tally.used,
                len(partial.tally.excluded),
            )
            return Outcome(
                "summed",
                reports_used=partial.tally.used,
                reports_excluded=len(partial.tally.excluded),
            )

        return self._guarded(cycle_id, run)

    def combine(
        self, job_id: str, cycle_id: str, checkpoint_number: int, shard_count: int
    ) -> Outcome:
        """Fold the shards' partial sums and store the checkpoint."""

        def run() -> Outcome:
            cycle = self._load(job_id, cycle_id, checkpoint_number)
            existing = self._existing(cycle)
            if existing is not None:
                return existing
            current = self._checkpoint(cycle)
            total = read_partials(
                self.objects, cycle_id, ModelLayout.of(current), shard_count
            )
            result = finish_linear(
                current,
                total,
                cycle.config,
                self._server_state(cycle),
                cycle.privacy,
            )
            outcome = self._store(cycle, result)
            failed = delete_partials(self.objects, cycle_id, shard_count)
            if failed:
                logger.warning(
                    "[Aggregator.Combine] cycle=%s undeleted_partials=%d",
                    cycle_id,
                    len(failed),
                )
            return outcome

        return self._guarded(cycle_id, run)

    def unmask_part(
        self, job_id: str, cycle_id: str, index: int, jobs: list[list[Any]], words: int
    ) -> Outcome:
        """Regenerate one part of a secure cycle's masks into the object store."""

        def run() -> Outcome:
            count = self._secure_sums().write_part(cycle_id, index, jobs, words)
            logger.info(
                "[Aggregator.UnmaskPart] job=%s cycle=%s part=%d masks=%d",
                job_id,
                cycle_id,
                index,
                count,
            )
            return Outcome("unmasked")

        return self._guarded(cycle_id, run)

    def combine_masks(
        self, job_id: str, cycle_id: str, checkpoint_number: int, parts: int
    ) -> Outcome:
        """Take every part's masks off a secure cycle's sum and store it."""

        def run() -> Outcome:
            cycle = self._load(job_id, cycle_id, checkpoint_number)
            existing = self._existing(cycle)
            if existing is not None:
                return existing
            sums = self._secure_sums()
            outcome = self._finish_secure(cycle, sums.plan(cycle_id), parts)
            failed = sums.delete_parts(cycle_id, parts)
            if failed:
                logger.warning(
                    "[Aggregator.CombineMasks] cycle=%s undeleted_parts=%d",
                    cycle_id,
                    len(failed),
                )
            return outcome

        return self._guarded(cycle_id, run)

    # --- steps -----------------------------------------------------------

    def _secure_sums(self) -> SecureSums:
        if self._secure is None:
            raise ConfigError(
                "this aggregator was built without the secure aggregation rounds "
                "store; it cannot unmask secure cycles"
            )
        return self._secure

    def _aggregate_secure(self, cycle: _Cycle) -> Outcome:
        plan = self._secure_sums().plan(cycle.cycle_id)
        parts = SecureSums.parts(plan, self.mask_jobs_per_task)
        if parts:
            logger.info(
                "[Aggregator.Aggregate] cycle=%s masks=%d parts=%d",
                cycle.cycle_id,
                len(plan.plan.jobs),
                len(parts),
            )
            return Outcome(
                "masks_split", mask_parts=tuple(parts), mask_words=plan.params.words
            )
        return self._finish_secure(cycle, plan, 0)

    def _finish_secure(self, cycle: _Cycle, plan: SecurePlan, parts: int) -> Outcome:
        current = self._checkpoint(cycle)
        total = self._secure_sums().total(plan, parts)
        result = finish_secure(
            current,
            plan.params.quantizer,
            total,
            plan.survivors,
            cycle.config,
            self._server_state(cycle),
            cycle.privacy,
        )
        return self._store(cycle, result)

    def _aggregate(self, job_id: str, cycle_id: str, checkpoint_number: int) -> Outcome:
        cycle = self._load(job_id, cycle_id, checkpoint_number)
        existing = self._existing(cycle)
        if existing is not None:
            return existing
        if self._hold is not None:
            self._hold(cycle_id)
        if cycle.secure:
            return self._aggregate_secure(cycle)
        config = cycle.config
        if (
            not cycle.job.averaging_plan
            and config.method in LINEAR
            and len(cycle.reports) > config.shard_size
        ):
            shards = split(len(cycle.reports), config.shard_size)
            logger.info(
                "[Aggregator.Aggregate] cycle=%s reports=%d shards=%d",
                cycle_id,
                len(cycle.reports),
                len(shards),
            )
            return Outcome("sharded", shards=tuple(shards))
        current = self._checkpoint(cycle)
        inputs = report_inputs(cycle.reports, self.objects, self.max_report_bytes)
        if cycle.job.averaging_plan and cycle.privacy is not None:
            raise ConfigError(
                "an averaging plan cannot run under differential_privacy; the "
                "grid must clip, sum and add noise itself"
            )
        if cycle.job.averaging_plan:
            result = average_with_plan(current, inputs, self._plan(cycle))
        else:
            result = average(
                current,
                inputs,
                config,
                self._server_state(cycle),
                spool_dir=self.spool_dir,
                privacy=cycle.privacy,
            )
        return self._store(cycle, result)

    def _load(self, job_id: str, cycle_id: str, checkpoint_number: int) -> _Cycle:
        try:
            listing = self.cycles.list_reports(cycle_id)
        except NotFound as exc:
            raise _UnknownCycle(str(exc)) from exc
        if listing.job_id and listing.job_id != job_id:
            raise InvalidArgument(
                f"cycle {cycle_id} belongs to job {listing.job_id}, not {job_id}"
            )
        if listing.checkpoint_number and listing.checkpoint_number != checkpoint_number:
            raise InvalidArgument(
                f"cycle {cycle_id} trained from checkpoint "
                f"{listing.checkpoint_number}, not {checkpoint_number}"
            )
        job = self.models.get_job_by_id(job_id)
        server = ServerConfig.from_json(job.server_config_json)
        # Checkpoint n + 1 comes from the n-th cycle that made one (1 = initial).
        privacy = private_averaging(server, checkpoint_number, self._noise)
        return _Cycle(
            job,
            server.averaging,
            list(listing.reports),
            cycle_id,
            checkpoint_number,
            privacy,
            secure_config(server),
        )

    def _existing(self, cycle: _Cycle) -> Outcome | None:
        for checkpoint in self.models.list_checkpoints(
            cycle.job.name, cycle.job.version
        ):
            if checkpoint.cycle_id == cycle.cycle_id:
                self._tell_stored(cycle.cycle_id, checkpoint.number)
                logger.info(
                    "[Aggregator.Aggregate] cycle=%s already_stored checkpoint=%d",
                    cycle.cycle_id,
                    checkpoint.number,
                )
                return Outcome("already_stored", checkpoint_number=checkpoint.number)
        return None

    def _checkpoint(self, cycle: _Cycle) -> dict[str, torch.Tensor]:
        _, data = self.models.open_checkpoint(
            cycle.job.name, cycle.job.version, number=cycle.checkpoint_number
        )
        return load_state_stream(io.BytesIO(b"".join(data)))

    def _server_state(self, cycle: _Cycle) -> dict[str, torch.Tensor] | None:
        if cycle.config.method not in STATEFUL:
            return None
        try:
            _, data = self.models.get_server_state(
                cycle.job.name, cycle.job.version, number=cycle.checkpoint_number
            )
            return load_state_stream(io.BytesIO(b"".join(data)))
        except NotFound:
            return None  # the first cycle of the job starts a fresh optimizer

    def _plan(self, cycle: _Cycle) -> Plan:
        data = self.models.get_plan(
            cycle.job.name, cycle.job.version, cycle.job.averaging_plan, PLAN_FORMAT
        )
        return Plan.from_bytes(b"".join(data))

    def _store(self, cycle: _Cycle, result: AveragingResult) -> Outcome:
        server_chunks = None
        if result.server_state is not None:
            server_chunks = encode_state_stream(result.server_state, self.chunk_bytes)
        checkpoint = self.models.create_checkpoint(
            cycle.job.id,
            cycle.cycle_id,
            encode_state_stream(result.state, self.chunk_bytes),
            server_chunks,
            metrics=result.metrics,
        )
        self._tell_stored(cycle.cycle_id, checkpoint.number)
        used = int(result.metrics["reports_used"])
        logger.info(
            "[Aggregator.Aggregate] cycle=%s stored checkpoint=%d used=%d excluded=%d",
            cycle.cycle_id,
            checkpoint.number,
            used,
            len(result.excluded),
        )
        return Outcome(
            "stored",
            checkpoint_number=checkpoint.number,
            reports_used=used,
            reports_excluded=len(result.excluded),
        )

    def _guarded(self, cycle_id: str, run: Callable[[], Outcome]) -> Outcome:
        """Run a step; mark the cycle failed on errors no retry can fix."""
        try:
            return run()
        except _UnknownCycle as exc:
            # Nobody can be told about a cycle the cycle manager does not know.
            logger.error("[Aggregator] dropped unknown cycle=%s: %s", cycle_id, exc)
            return Outcome("dropped", reason=str(exc))
        except PERMANENT as exc:
            return self._fail(cycle_id, str(exc))

    def _tell_stored(self, cycle_id: str, number: int) -> None:
        try:
            self.cycles.checkpoint_stored(cycle_id, number)
        except Conflict as exc:
            # The cycle already ended otherwise; the checkpoint stays for audit.
            logger.warning(
                "[Aggregator] cycle=%s checkpoint=%d not taken: %s",
                cycle_id,
                number,
                exc,
            )

    def _fail(self, cycle_id: str, reason: str) -> Outcome:
        logger.error("[Aggregator] failed cycle=%s reason=%s", cycle_id, reason)
        try:
            self.cycles.aggregation_failed(cycle_id, reason)
        except Conflict as exc:
            logger.warning("[Aggregator] cycle=%s already ended: %s", cycle_id, exc)
        return Outcome("failed", reason=reason)
