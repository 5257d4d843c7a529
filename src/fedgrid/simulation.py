"""The local simulator: a whole job in one process with N virtual workers."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fedgrid.averaging import AveragingFailed, ReportInput, average
from fedgrid.averaging.planned import average_with_plan
from fedgrid.errors import ConfigError
from fedgrid.job import AVERAGING_PLAN, TRAINING_PLAN, JobSpec, TracedJob, load_job
from fedgrid.jobconfig import ServerConfig
from fedgrid.plans import Plan
from fedgrid.privacy.mechanism import (
    PrivateAveraging,
    private_averaging,
    stop_rule,
    worker_clip,
)
from fedgrid.privacy.noise import NoiseSource
from fedgrid.secagg import SecAggError, run_secagg
from fedgrid.secagg.averaging import (
    diff_vector,
    finish_secure,
    params_for,
    secure_config,
    vector_length,
)
from fedgrid.tensors import state_stream_bytes
from fedgrid.worker.report import compute_diff
from fedgrid.worker.training import TrainingResult, train

logger = logging.getLogger(__name__)

Batch = Mapping[str, torch.Tensor]
TrainFn = Callable[
    [
        Mapping[str, Plan],
        Mapping[str, torch.Tensor],
        Sequence[Batch],
        Mapping[str, Any],
    ],
    TrainingResult,
]


@dataclass
class SimulatedCycle:
    """One cycle: who took part, whether it made a checkpoint, its metrics."""

    number: int
    admitted: list[int]
    reported: list[int]
    checkpoint: int | None  # the checkpoint it produced, None when it failed
    metrics: dict[str, float] = field(default_factory=dict)
    failure: str = ""


@dataclass
class SimulationResult:
    """The trained model, every cycle's outcome and why the run stopped."""

    state: dict[str, torch.Tensor]
    cycles: list[SimulatedCycle]
    finish_reason: str

    @property
    def checkpoints(self) -> int:
        """Checkpoints made, counting the initial model as checkpoint 1."""
        return 1 + sum(1 for cycle in self.cycles if cycle.checkpoint is not None)

    @property
    def metrics(self) -> list[dict[str, float]]:
        """Checkpoint metrics of the cycles that produced one, in order."""
        return [cycle.metrics for cycle in self.cycles if cycle.checkpoint is not None]


def _default_train(
    plans: Mapping[str, Plan],
    params: Mapping[str, torch.Tensor],
    batches: Sequence[Batch],
    client_config: Mapping[str, Any],
) -> TrainingResult:
    return train(plans[TRAINING_PLAN], params, batches, client_config)


class _Pool:
    """Applies the server config's admission rules to the virtual workers."""

    def __init__(self, size: int, config: ServerConfig, rng: random.Random) -> None:
        self.size = size
        self.config = config
        self.rng = rng
        self.last_cycle: dict[int, int] = {}
        self.next_worker = 0

    def eligible(self, worker: int, cycle: int) -> bool:
        last = self.last_cycle.get(worker)
        gap = self.config.do_not_reuse_workers_until_cycle
        return last is None or gap == 0 or cycle >= last + gap

    def admit(self, cycle: int) -> list[int]:
        """Workers admitted to this cycle, in the order they asked."""
        seats = self.config.max_workers
        if self.config.pool_selection == "iterate":
            start = self.next_worker
            order = [(start + i) % self.size for i in range(self.size)]
        else:
            order = list(range(self.size))
            self.rng.shuffle(order)
        admitted: list[int] = []
        for worker in order:
            if len(admitted) >= seats:
                break
            if not self.eligible(worker, cycle):
                continue
            if self.config.pool_selection == "random":
                probability = self.config.random_admission_probability
                if self.rng.random() >= probability:
                    continue
            admitted.append(worker)
        if admitted and self.config.pool_selection == "iterate":
            self.next_worker = (admitted[-1] + 1) % self.size
        for worker in admitted:
            self.last_cycle[worker] = cycle
        return admitted


def simulate(
    job: JobSpec | TracedJob | str | Path,
    partitions: Sequence[Sequence[Batch]],
    *,
    seed: int = 0,
    num_cycles: int | None = None,
    train_fn: TrainFn | None = None,
    threads: int | None = 1,
    noise: NoiseSource | None = None,
) -> SimulationResult:
    """Run the job's cycles with one virtual worker per data partition.

    Each partition is one worker's local data as a list of batches (dicts of
    the training plan's data inputs). Workers run the traced plan with the
    interpreter, as real workers do; admission follows the server config
    (max_workers, pool_selection, do_not_reuse_workers_until_cycle), a cycle
    closes at max_diffs reports and fails below min_diffs, and the diffs are
    averaged by fedgrid.averaging (or the job's averaging plan), as the
    aggregator does. `seed` drives random pool selection. `threads` sets
    torch's intra-op threads for the run (one suits many small steps best;
    None leaves the setting alone). With differential_privacy in the server
    config, averaging clips, adds noise from `noise` (the secure source by
    default) and records epsilon, and the run stops where max_epsilon would be
    passed, as on the grid.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _simulate(job, partitions, seed, num_cycles, train_fn, noise)
    finally:
        torch.set_num_threads(previous)


def _simulate(
    job: JobSpec | TracedJob | str | Path,
    partitions: Sequence[Sequence[Batch]],
    seed: int,
    num_cycles: int | None,
    train_fn: TrainFn | None,
    noise: NoiseSource | None,
) -> SimulationResult:
    traced = _traced(job)
    config = traced.server_config
    target = num_cycles if num_cycles is not None else config.num_cycles
    if target <= 0:
        raise ConfigError(
            "the job's num_cycles is 0 (unlimited); pass num_cycles= to simulate"
        )
    if not partitions:
        raise ConfigError("simulate needs at least one data partition (one worker)")
    attempts = config.max_cycle_attempts or 3 * target
    trainer = train_fn or _default_train
    pool = _Pool(len(partitions), config, random.Random(seed))
    current = {name: tensor.clone() for name, tensor in traced.state.items()}
    server_state: dict[str, torch.Tensor] | None = None
    cycles: list[SimulatedCycle] = []
    made = 0
    budget = stop_rule(config)
    privacy_stop = ""

    for number in range(1, attempts + 1):
        if made >= target:
            break
        if budget is not None and made >= budget[0]:
            privacy_stop = budget[1]
            break
        admitted = pool.admit(number)
        reporting = admitted[: config.max_diffs]
        cycle = SimulatedCycle(number, admitted, reporting, None)
        cycles.append(cycle)
        if len(reporting) < config.min_diffs:
            cycle.failure = (
                f"{len(reporting)} reports, fewer than min_diffs={config.min_diffs}"
            )
            logger.info("[Simulator.cycle] number=%s failed: %s", number, cycle.failure)
            continue

        # Every reporting worker trains from the same checkpoint.
        reports = []
        for worker in reporting:
            result = trainer(
                traced.plans, current, partitions[worker], traced.client_config
            )
            diff = worker_clip(config, compute_diff(current, result.params))
            reports.append((worker, result, diff))

        try:
            current, metrics, server_state = _aggregate(
                traced, current, reports, server_state, made + 1, noise
            )
        except (AveragingFailed, SecAggError) as exc:
            cycle.failure = str(exc)
            logger.info("[Simulator.cycle] number=%s failed: %s", number, exc)
            continue
        made += 1
        cycle.checkpoint = made + 1
        cycle.metrics = metrics
        logger.info(
            "[Simulator.cycle] number=%s checkpoint=%s reports=%s",
            number,
            cycle.checkpoint,
            len(reporting),
        )

    reason = "num_cycles reached" if made >= target else "max_cycle_attempts reached"
    if privacy_stop:
        reason = privacy_stop
    return SimulationResult(state=current, cycles=cycles, finish_reason=reason)


def _traced(job: JobSpec | TracedJob | str | Path) -> TracedJob:
    if isinstance(job, TracedJob):
        return job
    if isinstance(job, JobSpec):
        return job.trace()
    return load_job(job).trace()


def _aggregate(
    traced: TracedJob,
    current: dict[str, torch.Tensor],
    reports: list[tuple[int, TrainingResult, dict[str, torch.Tensor]]],
    server_state: dict[str, torch.Tensor] | None,
    cycle: int,
    noise: NoiseSource | None,
) -> tuple[dict[str, torch.Tensor], dict[str, float], dict[str, torch.Tensor] | None]:
    """One cycle's averaging: the aggregator's code path, fed from memory."""
    privacy = private_averaging(traced.server_config, cycle, noise)
    if secure_config(traced.server_config):
        return _aggregate_secure(traced, current, reports, server_state, privacy)
    inputs = [
        ReportInput(
            key=f"worker-{worker}",
            sample_count=result.sample_count,
            metrics=result.metrics,
            load=_loader(state_stream_bytes(diff)),
        )
        for worker, result, diff in reports
    ]
    averaging_plan = traced.plans.get(AVERAGING_PLAN)
    if averaging_plan is not None and privacy is not None:
        raise ConfigError(
            "an averaging plan cannot run under differential_privacy; the grid "
            "must clip, sum and add noise itself"
        )
    if averaging_plan is not None:
        planned = average_with_plan(current, inputs, averaging_plan)
        return planned.state, planned.metrics, None
    averaged = average(
        current,
        inputs,
        traced.server_config.averaging,
        server_state,
        privacy=privacy,
    )
    return averaged.state, averaged.metrics, averaged.server_state


def _loader(blob: bytes) -> Callable[[Any], bytes]:
    return lambda _buffer: blob


def _aggregate_secure(
    traced: TracedJob,
    current: dict[str, torch.Tensor],
    reports: list[tuple[int, TrainingResult, dict[str, torch.Tensor]]],
    server_state: dict[str, torch.Tensor] | None,
    privacy: PrivateAveraging | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, float], dict[str, torch.Tensor] | None]:
    """One cycle under secure aggregation: the protocol's code, every worker in."""
    config = traced.server_config
    # Under DP every worker counts once (its diff is clipped on the worker).
    unweighted = config.averaging.method == "mean" or privacy is not None
    inputs = {
        f"worker-{worker}": (
            diff_vector(current, diff),
            1 if unweighted else int(result.sample_count),
        )
        for worker, result, diff in reports
    }
    params = params_for(config, "simulated", sorted(inputs), vector_length(current))
    outcome = run_secagg(params, inputs)
    averaged = finish_secure(
        current,
        params.quantizer,
        outcome.result.total,
        len(outcome.result.survivors),
        config.averaging,
        server_state,
        privacy,
    )
    return averaged.state, averaged.metrics, averaged.server_state
