"""Exact sums with and without dropouts, and clean failure below threshold."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from fedgrid.secagg import (
    Round,
    SecAggParams,
    SecAggServer,
    SecAggWorker,
    TooFewSurvivors,
    mask_total,
    run_secagg,
    split_jobs,
)
from tests.secagg.conftest import Inputs, expected_total, spread

MakeParams = Callable[..., SecAggParams]
MakeInputs = Callable[..., Inputs]


@pytest.mark.parametrize(
    ("count", "threshold", "neighbours"),
    [(3, 2, 2), (4, 3, 4), (7, 4, 6), (12, 7, 10), (40, 7, 10), (100, 7, 10)],
)
def test_exact_sum_without_dropouts(
    make_params: MakeParams,
    make_inputs: MakeInputs,
    count: int,
    threshold: int,
    neighbours: int,
) -> None:
    params = make_params(count, threshold, neighbours, max_weight=50)
    inputs = make_inputs(params, seed=count)

    outcome = run_secagg(params, inputs)

    assert outcome.result.survivors == params.participants
    expected = expected_total(params, inputs, params.participants)
    np.testing.assert_array_equal(outcome.result.total.astype(np.uint64), expected)
    clipped = {w: (np.clip(x, -1.0, 1.0), n) for w, (x, n) in inputs.items()}
    weight = sum(n for _, n in clipped.values())
    mean = sum(x * n for x, n in clipped.values()) / weight
    assert outcome.total_weight == weight
    np.testing.assert_allclose(outcome.mean, mean, atol=count / params.quantizer.scale)


@pytest.mark.parametrize("round_", list(Round))
@pytest.mark.parametrize(("count", "threshold", "neighbours"), [(5, 3, 4), (30, 7, 10)])
def test_exact_sum_with_most_tolerated_dropouts(
    make_params: MakeParams,
    make_inputs: MakeInputs,
    round_: Round,
    count: int,
    threshold: int,
    neighbours: int,
) -> None:
    params = make_params(count, threshold, neighbours, max_weight=20)
    inputs = make_inputs(params, seed=int(round_))
    if neighbours >= count - 1:
        dropped = list(params.graph.order[: count - threshold])
    else:
        dropped = spread(params.graph.order, count)
    assert dropped

    outcome = run_secagg(params, inputs, {w: round_ for w in dropped})

    # A worker dropping while unmasking already sent its input: it counts.
    counted = (
        params.participants
        if round_ is Round.UNMASK
        else tuple(w for w in params.participants if w not in dropped)
    )
    assert outcome.result.survivors == counted
    expected = expected_total(params, inputs, counted)
    np.testing.assert_array_equal(outcome.result.total.astype(np.uint64), expected)
    assert outcome.total_weight == sum(inputs[w][1] for w in counted)


@pytest.mark.parametrize(
    ("round_", "where"),
    [
        (Round.ADVERTISE, "advertise keys"),
        (Round.SHARE_KEYS, "share keys"),
        (Round.MASKED_INPUT, "masked input"),
        (Round.UNMASK, "unmask"),
    ],
)
def test_one_short_of_threshold_fails_cleanly(
    make_params: MakeParams, make_inputs: MakeInputs, round_: Round, where: str
) -> None:
    params = make_params(10, 7, 10)
    inputs = make_inputs(params)
    dropped = params.graph.order[:4]

    with pytest.raises(TooFewSurvivors) as caught:
        run_secagg(params, inputs, {w: round_ for w in dropped})

    assert str(caught.value).startswith(where)
    assert "threshold is 7" in str(caught.value)


def test_fewer_participants_than_threshold_is_refused(make_params: MakeParams) -> None:
    with pytest.raises(TooFewSurvivors, match="cannot reach the reconstruction"):
        make_params(5, 7, 10)


def test_five_hundred_workers_at_the_clipping_bound_do_not_overflow(
    make_params: MakeParams,
) -> None:
    params = make_params(500, 7, 10, length=2, max_weight=1000, clipping_range=0.5)
    inputs = {
        w: (np.array([9.0, -9.0]), 5000 if i % 2 else 1000)
        for i, w in enumerate(params.participants)
    }

    outcome = run_secagg(params, inputs)

    # Everyone is clipped to +-0.5 and capped at weight 1000: the extreme sum.
    assert outcome.total_weight == 500 * 1000
    np.testing.assert_allclose(outcome.weighted_sum, [250_000.0, -250_000.0], rtol=1e-6)
    np.testing.assert_allclose(outcome.mean, [0.5, -0.5], rtol=1e-6)


def test_ring_is_deterministic_from_seed_and_ids(make_params: MakeParams) -> None:
    params = make_params(30, 7, 10)
    again = SecAggParams.from_setup(params.to_setup())
    other_seed = make_params(30, 7, 10)

    assert again.graph.order == params.graph.order
    assert again == params
    assert other_seed.graph.order != params.graph.order
    for worker in params.participants:
        neighbours = params.graph.neighbours(worker)
        assert len(set(neighbours)) == 10
        assert all(params.graph.are_neighbours(worker, n) for n in neighbours)
        assert all(worker in params.graph.neighbours(n) for n in neighbours)


def test_unmasking_split_across_tasks_gives_the_same_sum(
    make_params: MakeParams, make_inputs: MakeInputs
) -> None:
    params = make_params(30, 7, 10)
    inputs = make_inputs(params, seed=11)
    dropped = {w: Round.MASKED_INPUT for w in spread(params.graph.order, 9)}
    server = SecAggServer(params)
    workers = {w: SecAggWorker(w, params) for w in params.participants}
    for worker in workers.values():
        server.receive_keys(worker.advertise())
    for name, roster in server.close_advertise().items():
        server.receive_shares(workers[name].share_keys(roster))
    for name, bundle in server.close_shares().items():
        if name not in dropped:
            values, weight = inputs[name]
            masked = workers[name].masked_input(bundle, values, weight)
            server.receive_masked_input(masked)
    request = server.close_masked_input()
    for name in request.survivors:
        server.receive_unmask(workers[name].unmask(request))

    plan = server.plan_unmasking()
    total = plan.masked_sum.astype(np.uint64)
    for part in split_jobs(plan.jobs, 4):
        total += mask_total(part, params.words, params.quantizer.bits)

    survivors = [w for w in params.participants if w not in dropped]
    expected = expected_total(params, inputs, survivors)
    np.testing.assert_array_equal(total & np.uint64(0xFFFFFFFF), expected)
    assert len(plan.jobs) > len(survivors)  # self masks plus dropped pairs
