"""Secure aggregation rounds kept in the real Redis, closed once, replayed."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fedgrid.errors import Conflict
from fedgrid.secagg import (
    MalformedMessage,
    Round,
    SecAggError,
    SecAggParams,
    SecAggWorker,
    TooFewSurvivors,
    mask_total,
    split_jobs,
)
from fedgrid.secagg.replay import jobs_from_json, jobs_to_json, plan_from_messages
from fedgrid.secagg.rounds import DONE, FAILED, SecAggRounds
from fedgrid.secagg.unmasking import add_words
from fedgrid.v1 import secagg_pb2
from tests.conftest import REDIS_URL
from tests.secagg.conftest import expected_total, spread, worker_ids


@pytest.fixture
def rounds(redis_prefix: str) -> Iterator[SecAggRounds]:
    store = SecAggRounds(REDIS_URL, redis_prefix)
    yield store
    store.close_connection()


def _params(count: int, threshold: int = 7, neighbours: int = 10) -> SecAggParams:
    return SecAggParams.create(
        cycle_id="cycle-grid",
        participants=worker_ids(count),
        threshold=threshold,
        neighbours=neighbours,
        vector_length=50,
        max_weight=100,
    )


def _inputs(params: SecAggParams) -> dict[str, tuple[np.ndarray, int]]:
    rng = np.random.default_rng(3)
    return {
        w: (rng.uniform(-1, 1, params.vector_length), int(rng.integers(1, 100)))
        for w in params.participants
    }


def _run(
    rounds: SecAggRounds,
    params: SecAggParams,
    inputs: dict[str, tuple[np.ndarray, int]],
    drop_after_shares: set[str],
    revealing: int | None = None,
) -> None:
    """Every worker in its own thread posts each round, as over the gateway."""
    cycle = params.cycle_id
    workers = {w: SecAggWorker(w, params) for w in params.participants}

    def post_all(round_: Round, make: dict[str, bytes]) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda w: rounds.post(cycle, round_, w, make[w]), make))

    post_all(
        Round.ADVERTISE,
        {w: s.advertise().SerializeToString() for w, s in workers.items()},
    )
    shares = {}
    for w, worker in workers.items():
        roster = secagg_pb2.KeyRoster.FromString(
            rounds.fetch(cycle, Round.ADVERTISE, w) or b""
        )
        shares[w] = worker.share_keys(roster).SerializeToString()
    post_all(Round.SHARE_KEYS, shares)
    masked = {}
    for w, worker in workers.items():
        if w in drop_after_shares:
            continue
        bundle = secagg_pb2.ShareBundle.FromString(
            rounds.fetch(cycle, Round.SHARE_KEYS, w) or b""
        )
        values, weight = inputs[w]
        masked[w] = worker.masked_input(bundle, values, weight).SerializeToString()
    post_all(Round.MASKED_INPUT, masked)
    if drop_after_shares:
        # The dropped never post: the round waits for its deadline.
        assert rounds.state(cycle)[0] == Round.MASKED_INPUT.name
        deadline = rounds.deadline(cycle, Round.MASKED_INPUT)
        assert rounds.close_due(now=deadline + 1) == [cycle]
    assert rounds.state(cycle)[0] == Round.UNMASK.name
    reveals = {}
    for w in sorted(masked)[:revealing]:
        request = secagg_pb2.UnmaskRequest.FromString(
            rounds.fetch(cycle, Round.MASKED_INPUT, w) or b""
        )
        reveals[w] = workers[w].unmask(request).SerializeToString()
    post_all(Round.UNMASK, reveals)
    if revealing is not None:
        deadline = rounds.deadline(cycle, Round.UNMASK)
        assert rounds.close_due(now=deadline + 1) == [cycle]


def test_twenty_workers_thirty_percent_drop_after_sharing_keys(
    rounds: SecAggRounds,
) -> None:
    params = _params(20)
    inputs = _inputs(params)
    dropped = set(spread(params.graph.order, 6))
    rounds.open(params, cycle_length=60)

    _run(rounds, params, inputs, dropped)

    assert rounds.state(params.cycle_id) == (DONE, "")
    stored = rounds.messages(params.cycle_id, Round.UNMASK)
    plan = plan_from_messages(rounds.params(params.cycle_id), stored)
    # Masks regenerated in three parts, as three tasks would, then added.
    parts = [jobs_from_json(jobs_to_json(p)) for p in split_jobs(plan.jobs, 3)]
    total = plan.masked_sum
    for part in parts:
        total = add_words(total, mask_total(part, params.words, 32), 32)
    survivors = sorted(set(params.participants) - dropped)
    assert len(survivors) == 14
    assert np.array_equal(
        total.astype(np.uint64), expected_total(params, inputs, survivors)
    )
    weighted, weight = params.quantizer.decode_sum(total)
    assert weight == sum(inputs[w][1] for w in survivors)
    mean = sum(inputs[w][1] * np.clip(inputs[w][0], -1, 1) for w in survivors) / weight
    np.testing.assert_allclose(weighted / weight, mean, atol=1e-6)


def test_too_few_survivors_fails_the_run_with_its_reason(rounds: SecAggRounds) -> None:
    params = _params(8, threshold=5, neighbours=6)
    rounds.open(params, cycle_length=60)
    workers = {w: SecAggWorker(w, params) for w in params.participants}
    for w in params.participants[:4]:
        rounds.post(
            params.cycle_id,
            Round.ADVERTISE,
            w,
            workers[w].advertise().SerializeToString(),
        )

    closed = rounds.close_due(now=rounds.deadline(params.cycle_id, Round.ADVERTISE) + 1)

    state, reason = rounds.state(params.cycle_id)
    assert closed == [params.cycle_id]
    assert state == FAILED
    assert "advertise keys" in reason and "threshold is 5" in reason
    with pytest.raises(SecAggError, match="failed"):
        rounds.fetch(params.cycle_id, Round.ADVERTISE, params.participants[0])


def test_a_round_closes_once_and_refuses_late_or_repeated_messages(
    rounds: SecAggRounds,
) -> None:
    params = _params(5, threshold=3, neighbours=4)
    cycle = params.cycle_id
    rounds.open(params, cycle_length=60)
    workers = {w: SecAggWorker(w, params) for w in params.participants}
    keys = {w: s.advertise().SerializeToString() for w, s in workers.items()}
    first, last = params.participants[0], params.participants[-1]
    rounds.post(cycle, Round.ADVERTISE, first, keys[first])

    with pytest.raises(MalformedMessage, match="already sent"):
        rounds.post(cycle, Round.ADVERTISE, first, keys[first])
    with pytest.raises(MalformedMessage, match="names worker"):
        rounds.post(cycle, Round.ADVERTISE, last, keys[first])
    with pytest.raises(MalformedMessage, match="not expected"):
        rounds.post(cycle, Round.ADVERTISE, "stranger", b"\n\x08stranger")
    assert rounds.fetch(cycle, Round.ADVERTISE, first) is None
    for w in params.participants[1:-1]:
        rounds.post(cycle, Round.ADVERTISE, w, keys[w])
    assert rounds.close(cycle, Round.ADVERTISE)
    assert not rounds.close(cycle, Round.ADVERTISE)

    with pytest.raises(Conflict, match="advertise round"):
        rounds.post(cycle, Round.ADVERTISE, last, keys[last])
    assert rounds.fetch(cycle, Round.ADVERTISE, first) is not None
    with pytest.raises(SecAggError, match="no longer in the run"):
        rounds.fetch(cycle, Round.ADVERTISE, last)
    assert rounds.state(cycle)[0] == Round.SHARE_KEYS.name


def test_too_few_revealers_leave_the_sum_masked_and_say_why(
    rounds: SecAggRounds,
) -> None:
    params = _params(8, threshold=5, neighbours=6)
    rounds.open(params, cycle_length=60)

    _run(rounds, params, _inputs(params), set(), revealing=3)

    assert rounds.state(params.cycle_id) == (DONE, "")
    stored = rounds.messages(params.cycle_id, Round.UNMASK)
    with pytest.raises(TooFewSurvivors, match="unmask: the secret of worker"):
        plan_from_messages(rounds.params(params.cycle_id), stored)
