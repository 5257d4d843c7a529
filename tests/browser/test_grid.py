"""A browser worker on the real grid: one cycle with Python workers, reloads."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch

from fedgrid.cli.admin_client import AdminClient
from fedgrid.job import JobSpec, TracedJob
from fedgrid.plans.examples import SmallCNN, sgd_training_step
from fedgrid.tensors import encode_state_stream, load_state_stream
from fedgrid.worker import CycleAssignment, GridError, RetryPolicy, Worker, train
from tests.browser.conftest import run_page, static_server
from tests.support import wait_for
from tests.worker.real_stack import (
    HAS_AGGREGATOR,
    NEEDS_AGGREGATOR,
    Grid,
    grid_settings,
    running_grid,
)
from tests.worker.sample_job import make_job, make_partition

pytestmark = pytest.mark.slow
RETRY = RetryPolicy(attempts=4, base_delay=0.1, max_delay=0.5)
BROWSER_TARGETS = ["python", "browser"]


@pytest.fixture(scope="module")
def grid(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    settings = grid_settings(database_url, tmp_path_factory.mktemp("grid"))
    with running_grid(settings) as running:
        yield running


@pytest.fixture(scope="module")
def site(browser_tools: None, grid: Grid, fixtures_dir: Path) -> Iterator[str]:
    """The test pages and the worker package, with /api/ forwarded to the grid."""
    with static_server(fixtures_dir, grid.url) as url:
        yield url


def _admin(grid: Grid) -> AdminClient:
    return AdminClient(grid.url, grid.admin_token)


def _host(grid: Grid, **server: Any) -> TracedJob:
    name = f"browser-{uuid.uuid4().hex[:8]}"
    traced = make_job(name=name, targets=BROWSER_TARGETS, **server).trace()
    client = _admin(grid)
    try:
        client.push(traced.host_body())
    finally:
        client.close()
    return traced


def _write_batches(folder: Path, seed: int) -> str:
    tensors: dict[str, torch.Tensor] = {}
    for index, batch in enumerate(make_partition(seed)):
        tensors[f"x.{index}"] = batch["x"]
        tensors[f"y.{index}"] = batch["y"]
    name = f"batches-{seed}.bin"
    with open(folder / name, "wb") as handle:
        for part in encode_state_stream(tensors):
            handle.write(part)
    return name


def _python_worker(grid: Grid, name: str, seed: int) -> threading.Event:
    job = Worker(grid.url, retry=RETRY).new_job(name)
    reported = threading.Event()

    def on_accepted(assignment: CycleAssignment) -> None:
        plan = assignment.plans["training_plan"].plan
        result = train(
            plan, assignment.params, make_partition(seed), assignment.client_config
        )
        job.report(
            result.params,
            sample_count=result.sample_count,
            metrics=result.metrics,
            next_cycle=False,
        )

    job.on("accepted", on_accepted)
    job.on("reported", lambda _answer: reported.set())
    job.start()
    return reported


def _checkpoint(grid: Grid, name: str, number: int, folder: Path) -> dict[str, Any]:
    client = _admin(grid)
    try:
        client.pull(name, None, str(number), folder / f"{name}-{number}.state")
    finally:
        client.close()
    with open(folder / f"{name}-{number}.state", "rb") as handle:
        return load_state_stream(handle)


def _checkpoint_numbers(grid: Grid, name: str) -> list[int]:
    client = _admin(grid)
    try:
        return [c["number"] for c in client.checkpoints(name, None)]
    finally:
        client.close()


def _cycles(grid: Grid, name: str) -> list[dict[str, Any]]:
    client = _admin(grid)
    try:
        cycles: list[dict[str, Any]] = client.job(name, None)["status"]["cycles"]
        return cycles
    finally:
        client.close()


@pytest.mark.skipif(not HAS_AGGREGATOR, reason=NEEDS_AGGREGATOR)
def test_browser_and_python_workers_make_one_checkpoint(
    grid: Grid, site: str, fixtures_dir: Path, tmp_path: Path
) -> None:
    traced = _host(grid, num_cycles=1, max_workers=3, min_diffs=3, max_diffs=3)
    name = traced.spec.name
    data = _write_batches(fixtures_dir, seed=11)

    with ThreadPoolExecutor(1) as pool:
        page = pool.submit(run_page, f"{site}/test/worker.html?job={name}&data={data}")
        python_reports = [_python_worker(grid, name, seed) for seed in (12, 13)]
        answer = page.result(timeout=150)["result"]
    assert all(event.wait(30) for event in python_reports)
    wait_for(lambda: 2 in _checkpoint_numbers(grid, name), 90, what="checkpoint 2")

    assert answer["answer"]["status"] == "accepted"
    assert answer["backend"] == "wasm"
    cycle = _cycles(grid, name)[0]
    assert cycle["admitted"] == 3 and cycle["reports"] == 3
    # FedAvg of three equal-sized diffs: checkpoint 1 minus their mean.
    plan = traced.plans["training_plan"]
    trained = [
        train(plan, traced.state, make_partition(seed), traced.client_config).params
        for seed in (11, 12, 13)
    ]
    second = _checkpoint(grid, name, 2, tmp_path)
    for key, start in traced.state.items():
        mean_diff = sum(start - params[key] for params in trained) / 3
        torch.testing.assert_close(second[key], start - mean_diff, rtol=0, atol=1e-5)


def test_page_reload_mid_cycle_still_reports(
    grid: Grid, site: str, fixtures_dir: Path
) -> None:
    traced = _host(grid, num_cycles=1, max_workers=1, max_diffs=1, cycle_length=120)
    name = traced.spec.name
    data = _write_batches(fixtures_dir, seed=21)

    answer = run_page(f"{site}/test/worker.html?job={name}&data={data}&reload=1", 120)

    result = answer["result"]
    assert answer["reloads"] == 1
    assert result["resumed"] is True and result["hadProgress"] is True
    assert result["requestKey"] == result["firstKey"]
    assert result["answer"]["status"] == "accepted"
    cycle = _cycles(grid, name)[0]
    assert cycle["admitted"] == 1 and cycle["reports"] == 1


def test_rejected_browser_asks_again_after_the_suggested_time(
    grid: Grid, site: str, fixtures_dir: Path
) -> None:
    traced = _host(grid, num_cycles=2, max_workers=1, max_diffs=1, cycle_length=8)
    name = traced.spec.name
    holder = Worker(grid.url, retry=RETRY).new_job(name)
    held = threading.Event()
    holder.on("accepted", lambda _assignment: held.set())
    holder.start()
    data = _write_batches(fixtures_dir, seed=31)
    try:
        assert held.wait(30)
        # the holder keeps its seat until the deadline and then asks no more,
        # so the browser is refused first and admitted to the next cycle
        holder.stop(wait=False)
        answer = run_page(f"{site}/test/worker.html?job={name}&data={data}", 120)
    finally:
        holder.stop()

    events = answer["result"]["events"]
    rejections = [e for e in events if e["kind"] == "rejected"]
    accepted = [e for e in events if e["kind"] == "accepted"]
    assert rejections and rejections[0]["reason"] == "cycle_full"
    assert len(accepted) == 1
    # Each request waits at least the seconds the previous rejection named.
    following = [e["at"] for e in rejections[1:]] + [accepted[0]["at"]]
    for rejection, at in zip(rejections, following, strict=True):
        assert at - rejection["at"] >= rejection["retryAfter"] * 1000 - 100


def test_browser_passes_the_speed_test_in_kbps(
    grid: Grid, site: str, fixtures_dir: Path
) -> None:
    traced = _host(
        grid,
        num_cycles=1,
        max_workers=1,
        max_diffs=1,
        minimum_download_speed=100,
        minimum_upload_speed=100,
    )
    data = _write_batches(fixtures_dir, seed=41)

    answer = run_page(f"{site}/test/worker.html?job={traced.spec.name}&data={data}")

    assert answer["result"]["answer"]["status"] == "accepted"
    events = answer["result"]["events"]
    assert [e["kind"] for e in events] == ["accepted"]


def test_demo_page_trains_and_reports(grid: Grid, site: str) -> None:
    traced = _host(grid, num_cycles=1, max_workers=1, max_diffs=1)

    answer = run_page(f"{site}/demo/?job={traced.spec.name}", 120)

    result = answer["result"]
    assert result["answer"]["status"] == "accepted"
    assert len(result["losses"]) >= 2 and all(loss > 0 for loss in result["losses"])
    assert _cycles(grid, traced.spec.name)[0]["reports"] == 1


def test_push_names_the_op_a_browser_cannot_run(grid: Grid) -> None:
    spec = JobSpec(
        name=f"cnn-{uuid.uuid4().hex[:8]}",
        version="1.0.0",
        model=SmallCNN(),
        training_plan=sgd_training_step,
        example_inputs={
            "data": torch.randn(4, 1, 8, 8),
            "target": torch.randint(0, 10, (4,)),
            "lr": torch.tensor(0.1),
        },
        client_config={"lr": 0.1},
        server_config={"max_workers": 1},
    )
    traced = spec.trace()
    browser = dataclasses.replace(traced.server_config, targets=tuple(BROWSER_TARGETS))
    client = _admin(grid)
    try:
        with pytest.raises(GridError) as refused:
            client.push(dataclasses.replace(traced, server_config=browser).host_body())
    finally:
        client.close()

    message = str(refused.value)
    assert refused.value.status == 400
    assert "aten.max_pool2d_with_indices.default" in message and "browser" in message
