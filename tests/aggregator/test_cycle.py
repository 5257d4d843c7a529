"""A cycle's aggregation against the real model store and cycle manager."""

from __future__ import annotations

import math

import pytest
import torch

from fedgrid.aggregation import Shard
from fedgrid.plans import trace_averaging_plan
from tests.aggregator.conftest import Grid, Upload, model_state


def diff(seed: int, scale: float = 0.1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 + seed)
    return {
        name: torch.randn(t.shape, generator=generator) * scale
        for name, t in model_state().items()
    }


def test_fedavg_cycle_stores_the_weighted_checkpoint(grid: Grid) -> None:
    job = grid.host(max_workers=2)
    first, second = diff(1), diff(2)
    cycle_id = grid.run_cycle(
        job,
        [
            Upload(first, samples=30, metrics={"loss": 1.0}),
            Upload(second, samples=10, metrics={"loss": 2.0}),
        ],
    )

    outcome = grid.aggregator().aggregate(job.id, cycle_id, 1)

    assert (outcome.status, outcome.checkpoint_number) == ("stored", 2)
    new = grid.checkpoint(job, 2)
    start = model_state()
    expected = (
        start["fc.weight"] - (30 * first["fc.weight"] + 10 * second["fc.weight"]) / 40
    )
    assert torch.allclose(new["fc.weight"], expected, atol=1e-6)
    [stored] = [c for c in grid.models.list_checkpoints(job.name) if c.number == 2]
    assert stored.cycle_id == cycle_id
    assert stored.metrics["loss"] == pytest.approx(1.25)
    assert stored.metrics["num_samples"] == 40
    assert stored.metrics["reports_used"] == 2
    assert grid.cycle_state(job, cycle_id) == "completed"


def test_retry_returns_the_same_checkpoint(grid: Grid) -> None:
    job = grid.host(max_workers=1)
    cycle_id = grid.run_cycle(job, [Upload(diff(1))])
    aggregator = grid.aggregator()

    first = aggregator.aggregate(job.id, cycle_id, 1)
    again = aggregator.aggregate(job.id, cycle_id, 1)

    assert first.status == "stored"
    assert (again.status, again.checkpoint_number) == ("already_stored", 2)
    assert [c.number for c in grid.models.list_checkpoints(job.name)] == [1, 2]


def test_bad_reports_are_excluded_and_the_rest_used(grid: Grid) -> None:
    job = grid.host(max_workers=4)
    good = diff(1)
    wrong_shape = diff(2)
    wrong_shape["fc.bias"] = torch.zeros(7)
    poisoned = diff(3)
    poisoned["fc.weight"][1, 1] = math.nan
    cycle_id = grid.run_cycle(
        job,
        [
            Upload(good, samples=5),
            Upload(wrong_shape),
            Upload(poisoned),
            Upload(diff(4), wrong_digest=True),
        ],
    )

    outcome = grid.aggregator().aggregate(job.id, cycle_id, 1)

    assert (outcome.reports_used, outcome.reports_excluded) == (1, 3)
    new = grid.checkpoint(job, 2)
    assert torch.allclose(new["fc.bias"], model_state()["fc.bias"] - good["fc.bias"])
    [stored] = [c for c in grid.models.list_checkpoints(job.name) if c.number == 2]
    assert stored.metrics["reports_excluded"] == 3


def test_nothing_usable_fails_the_cycle_without_a_checkpoint(grid: Grid) -> None:
    job = grid.host(max_workers=2)
    poisoned = diff(1)
    poisoned["fc.bias"][0] = math.inf
    misshapen = diff(2)
    misshapen["fc.bias"] = misshapen["fc.bias"][:-1].clone()
    cycle_id = grid.run_cycle(job, [Upload(poisoned), Upload(misshapen)])

    outcome = grid.aggregator().aggregate(job.id, cycle_id, 1)

    assert outcome.status == "failed"
    assert "excluded" in outcome.reason
    assert [c.number for c in grid.models.list_checkpoints(job.name)] == [1]
    assert grid.cycle_state(job, cycle_id) == "failed"


def test_fedadam_keeps_its_state_between_cycles(grid: Grid) -> None:
    job = grid.host(averaging={"method": "fedadam"}, max_workers=1)
    aggregator = grid.aggregator()

    for number in (1, 2):
        cycle_id = grid.run_cycle(job, [Upload(diff(number))])
        outcome = aggregator.aggregate(job.id, cycle_id, number)
        assert outcome.checkpoint_number == number + 1

    _, data = grid.models.get_server_state(job.name, job.version, number=3)
    import io

    from fedgrid.tensors import load_state_stream

    state = load_state_stream(io.BytesIO(b"".join(data)))
    assert int(state["step"]) == 2
    assert state["v/fc.weight"].shape == (6, 5)
    assert all(bool(torch.isfinite(t).all()) for t in grid.checkpoint(job, 3).values())


def test_large_cycle_is_summed_in_shards_then_combined(grid: Grid) -> None:
    job = grid.host(averaging={"method": "fedavg", "shard_size": 2}, max_workers=5)
    diffs = [diff(i) for i in range(5)]
    bad = diff(9)
    bad["fc.weight"][0, 0] = math.nan
    uploads = [Upload(d, samples=i + 1) for i, d in enumerate(diffs)]
    uploads[3] = Upload(bad, samples=4)
    cycle_id = grid.run_cycle(job, uploads)
    aggregator = grid.aggregator()

    planned = aggregator.aggregate(job.id, cycle_id, 1)
    for shard in planned.shards:
        aggregator.sum_shard(job.id, cycle_id, 1, shard)
    outcome = aggregator.combine(job.id, cycle_id, 1, len(planned.shards))

    assert planned.shards == (Shard(0, 0, 2), Shard(1, 2, 4), Shard(2, 4, 5))
    assert (outcome.status, outcome.reports_used, outcome.reports_excluded) == (
        "stored",
        4,
        1,
    )
    used = [0, 1, 2, 4]
    total = sum(i + 1 for i in used)
    mean = sum((i + 1) * diffs[i]["fc.weight"] for i in used) / total
    new = grid.checkpoint(job, 2)
    assert torch.allclose(
        new["fc.weight"], model_state()["fc.weight"] - mean, atol=1e-6
    )
    assert not grid.objects.exists(f"aggregation/{cycle_id}/shard-00000.sums")


def test_job_averaging_plan_runs_in_the_aggregator(grid: Grid) -> None:
    def running_mean(avg, diff, n):  # type: ignore[no-untyped-def]
        return {k: avg[k] + (diff[k] - avg[k]) / n for k in avg}

    plan = trace_averaging_plan(running_mean, model_state(), style="iterative")
    job = grid.host(
        max_workers=2,
        plans=[("averaging_plan", plan.to_bytes())],
        averaging_plan="averaging_plan",
    )
    first, second = diff(1), diff(2)
    # Unequal sample counts: the plan's unweighted mean differs from fedavg.
    cycle_id = grid.run_cycle(job, [Upload(first, 1), Upload(second, 9)])

    outcome = grid.aggregator().aggregate(job.id, cycle_id, 1)

    assert outcome.status == "stored"
    mean = (first["fc.bias"] + second["fc.bias"]) / 2
    assert torch.allclose(
        grid.checkpoint(job, 2)["fc.bias"], model_state()["fc.bias"] - mean, atol=1e-6
    )
