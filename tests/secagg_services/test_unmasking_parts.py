"""The aggregator's unmasking of a finished run, whole or split into parts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fedgrid.aggregation.secure import SecureSums
from fedgrid.averaging import AveragingFailed
from fedgrid.objectstore.file_store import FileObjectStore
from fedgrid.secagg.driver import Round
from fedgrid.secagg.params import SecAggParams
from fedgrid.secagg.rounds import SecAggRounds
from fedgrid.secagg.worker import SecAggWorker
from fedgrid.v1 import secagg_pb2
from tests.conftest import REDIS_URL

WORKERS = [f"w{i:02d}" for i in range(12)]
LENGTH = 40


@pytest.fixture
def rounds(redis_prefix: str) -> Iterator[SecAggRounds]:
    store = SecAggRounds(REDIS_URL, redis_prefix)
    yield store
    store.close_connection()


def _run(
    rounds: SecAggRounds, dropped: set[str]
) -> tuple[SecAggParams, dict[str, np.ndarray]]:
    """A whole run through the rounds store; `dropped` leave after sharing keys."""
    params = SecAggParams.create(
        cycle_id="cycle-parts",
        participants=WORKERS,
        threshold=4,
        neighbours=6,
        vector_length=LENGTH,
        max_weight=10,
    )
    rounds.open(params, cycle_length=60)
    workers = {w: SecAggWorker(w, params) for w in WORKERS}
    rng = np.random.default_rng(3)
    values = {w: rng.uniform(-1, 1, LENGTH) for w in WORKERS}

    def answer(round_: Round, worker: str, kind: type) -> object:
        message = kind()
        message.ParseFromString(rounds.fetch(params.cycle_id, round_, worker))
        return message

    for w, worker in workers.items():
        payload = worker.advertise().SerializeToString()
        rounds.post(params.cycle_id, Round.ADVERTISE, w, payload)
    for w, worker in workers.items():
        roster = answer(Round.ADVERTISE, w, secagg_pb2.KeyRoster)
        payload = worker.share_keys(roster).SerializeToString()
        rounds.post(params.cycle_id, Round.SHARE_KEYS, w, payload)
    alive = [w for w in WORKERS if w not in dropped]
    for w in alive:
        bundle = answer(Round.SHARE_KEYS, w, secagg_pb2.ShareBundle)
        masked = workers[w].masked_input(bundle, values[w], 2)
        rounds.post(params.cycle_id, Round.MASKED_INPUT, w, masked.SerializeToString())
    rounds.close(params.cycle_id, Round.MASKED_INPUT)
    for w in alive:
        request = answer(Round.MASKED_INPUT, w, secagg_pb2.UnmaskRequest)
        shares = workers[w].unmask(request).SerializeToString()
        rounds.post(params.cycle_id, Round.UNMASK, w, shares)
    return params, {w: values[w] for w in alive}


def test_mask_parts_add_up_to_the_exact_sum(
    rounds: SecAggRounds, tmp_path: Path
) -> None:
    params, survivors = _run(rounds, dropped={"w00", "w05"})
    sums = SecureSums(rounds, FileObjectStore(tmp_path))
    plan = sums.plan(params.cycle_id)

    parts = SecureSums.parts(plan, per_task=5)
    for index, jobs in enumerate(parts):
        sums.write_part(params.cycle_id, index, jobs, params.words)
    split_total = sums.total(plan, len(parts))
    whole_total = sums.total(plan, 0)

    assert len(parts) > 1 and plan.survivors == 10
    np.testing.assert_array_equal(split_total, whole_total)
    weighted, weight = params.quantizer.decode_sum(whole_total)
    assert weight == 2 * len(survivors)
    expected = sum(2 * np.clip(v, -1, 1) for v in survivors.values())
    np.testing.assert_allclose(weighted, expected, atol=1e-3)
    assert sums.delete_parts(params.cycle_id, len(parts)) == []


def test_a_run_that_is_not_done_gives_no_plan(
    rounds: SecAggRounds, tmp_path: Path
) -> None:
    params = SecAggParams.create(
        cycle_id="cycle-open",
        participants=WORKERS,
        threshold=4,
        neighbours=6,
        vector_length=LENGTH,
    )
    rounds.open(params, cycle_length=60)
    sums = SecureSums(rounds, FileObjectStore(tmp_path))

    with pytest.raises(AveragingFailed, match="are gone"):
        sums.plan("cycle-never-run")
    rounds.close(params.cycle_id, Round.ADVERTISE)
    with pytest.raises(AveragingFailed, match="secure aggregation failed"):
        sums.plan(params.cycle_id)
