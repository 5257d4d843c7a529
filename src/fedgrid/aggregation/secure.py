"""Unmasking a secure cycle's sum: its plan, mask parts across tasks, the total.

The run's messages stay in Redis (fedgrid.secagg.rounds). Replaying them
gives the masked sum of the survivors' inputs and the masks to take off it.
Large cycles deal the masks into parts, one Celery task each; every part's
total goes to the object store, and the combine step adds them up (modulo
2^bits) and takes them off the masked sum. No partial sum over a subset of
workers is ever formed: parts split masks, not workers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fedgrid.averaging import AveragingFailed
from fedgrid.errors import DataLoss, NotFound, Unavailable
from fedgrid.objectstore import ObjectStore
from fedgrid.secagg.driver import Round
from fedgrid.secagg.errors import SecAggError
from fedgrid.secagg.params import SecAggParams
from fedgrid.secagg.quantization import word_dtype
from fedgrid.secagg.replay import jobs_from_json, jobs_to_json, plan_from_messages
from fedgrid.secagg.rounds import DONE, FAILED, SecAggRounds
from fedgrid.secagg.server import UnmaskPlan
from fedgrid.secagg.unmasking import add_words, mask_total, split_jobs

logger = logging.getLogger(__name__)

# Masks regenerated per task: above this many, unmasking is split across tasks.
MASK_JOBS_PER_TASK = 256

JobsJson = list[list[Any]]


@dataclass(frozen=True)
class SecurePlan:
    """A finished run's parameters, its unmasking plan and how many inputs."""

    params: SecAggParams
    plan: UnmaskPlan
    survivors: int


def part_key(cycle_id: str, index: int) -> str:
    """Object key of one part's mask total (derived from ids only)."""
    return f"aggregation/{cycle_id}/masks-{index:05d}.words"


class SecureSums:
    """The aggregator's view of secure runs, over their rounds and the store."""

    def __init__(self, rounds: SecAggRounds, objects: ObjectStore) -> None:
        self.rounds = rounds
        self.objects = objects

    def plan(self, cycle_id: str) -> SecurePlan:
        """Rebuild a finished run; AveragingFailed when it cannot give a sum."""
        try:
            current, reason = self.rounds.state(cycle_id)
        except NotFound as exc:
            raise AveragingFailed(
                f"the secure aggregation messages of cycle {cycle_id} are gone"
            ) from exc
        if current == FAILED:
            raise AveragingFailed(f"secure aggregation failed: {reason}")
        if current != DONE:
            raise Unavailable(
                f"the secure aggregation run of cycle {cycle_id} is still at "
                f"{current.lower()}"
            )
        params = self.rounds.params(cycle_id)
        messages = self.rounds.messages(cycle_id, Round.UNMASK)
        try:
            plan = plan_from_messages(params, messages)
        except SecAggError as exc:
            # Too few revealed shares: the sum stays masked for good.
            raise AveragingFailed(str(exc)) from exc
        survivors = len(self.rounds.survivors(cycle_id))
        return SecurePlan(params, plan, survivors)

    @staticmethod
    def parts(plan: SecurePlan, per_task: int) -> list[JobsJson]:
        """The mask jobs dealt into parts for tasks; [] when one task will do."""
        jobs = plan.plan.jobs
        if len(jobs) <= per_task:
            return []
        count = -(-len(jobs) // per_task)
        return [jobs_to_json(part) for part in split_jobs(jobs, count)]

    def write_part(
        self, cycle_id: str, index: int, jobs: Sequence[Sequence[Any]], words: int
    ) -> int:
        """Regenerate one part's masks and store their total; returns the jobs."""
        params = self.rounds.params(cycle_id)
        if words != params.words:
            raise AveragingFailed(
                f"a mask part of cycle {cycle_id} has {words} words; the run has "
                f"{params.words}"
            )
        parsed = jobs_from_json(jobs)
        total = mask_total(parsed, params.words, params.quantizer.bits)
        data = total.astype(total.dtype.newbyteorder("<")).tobytes()
        self.objects.put(part_key(cycle_id, index), [data])
        return len(parsed)

    def total(self, plan: SecurePlan, parts: int) -> NDArray[np.unsignedinteger]:
        """The exact sum of the survivors' inputs: masked sum plus every mask."""
        bits = plan.params.quantizer.bits
        if parts == 0:
            masks = mask_total(plan.plan.jobs, plan.params.words, bits)
            return add_words(plan.plan.masked_sum, masks, bits)
        dtype = word_dtype(bits)
        total = plan.plan.masked_sum.copy()
        for index in range(parts):
            key = part_key(plan.params.cycle_id, index)
            try:
                data = b"".join(self.objects.get(key))
            except NotFound as exc:
                raise Unavailable(
                    f"mask part {index} of cycle {plan.params.cycle_id} is not "
                    "written yet"
                ) from exc
            part = np.frombuffer(data, dtype=dtype)
            if part.size != plan.params.words:
                raise DataLoss(f"mask part {index} has {part.size} words")
            total = add_words(total, part.astype(dtype), bits)
        return total

    def delete_parts(self, cycle_id: str, parts: int) -> list[str]:
        """Remove a cycle's mask parts; the keys that could not be deleted."""
        return self.objects.delete_quietly(
            [part_key(cycle_id, i) for i in range(parts)]
        )
