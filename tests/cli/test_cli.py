"""Every `fedgrid` admin command against the real grid, through click."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

from fedgrid.cli import main
from fedgrid.cli.plotting import metric_series, plot_metrics
from fedgrid.errors import InvalidArgument
from fedgrid.tensors import load_state_stream
from fedgrid.worker import CycleAssignment, RetryPolicy, Worker, train
from tests.support import wait_for
from tests.worker.real_stack import Grid
from tests.worker.sample_job import make_job, make_partition

pytestmark = pytest.mark.slow
JobFile = Callable[..., tuple[Path, str]]


def run(grid: Grid, *args: str, token: str | None = None) -> Result:
    env = {"FEDGRID_URL": grid.url, "FEDGRID_ADMIN_TOKEN": token or grid.admin_token}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_push_then_list_and_inspect_the_job(grid: Grid, job_file: JobFile) -> None:
    path, name = job_file(num_cycles=2)

    pushed = run(grid, "push", str(path), "--json")
    listed = run(grid, "jobs", "--json")
    table = run(grid, "jobs")

    assert pushed.exit_code == 0, pushed.output
    job = json.loads(pushed.stdout)
    assert (job["name"], job["version"]) == (name, "1.0.0")
    assert name in [item["name"] for item in json.loads(listed.stdout)["jobs"]]
    assert table.exit_code == 0 and name in table.stdout


def test_push_shows_progress_and_refuses_a_duplicate(
    grid: Grid, job_file: JobFile
) -> None:
    path, name = job_file()

    first = run(grid, "push", str(path))
    again = run(grid, "push", str(path))

    assert first.exit_code == 0 and f"pushed {name} version 1.0.0" in first.stdout
    assert again.exit_code == 1
    assert again.stdout.strip() == ""
    assert again.stderr.count("\n") == 1 and "HTTP 409" in again.stderr


def test_push_refuses_a_bad_config_before_uploading(
    grid: Grid, job_file: JobFile
) -> None:
    path, name = job_file(max_workerz=3)

    result = run(grid, "push", str(path))
    listed = json.loads(run(grid, "jobs", "--json").stdout)["jobs"]

    assert result.exit_code == 1
    assert "unknown keys ['max_workerz']" in result.stderr
    assert name not in [item["name"] for item in listed]


def test_admin_token_is_checked(grid: Grid) -> None:
    wrong = run(grid, "jobs", token="not-the-token")
    missing = CliRunner().invoke(main, ["--url", grid.url, "jobs"], env={})

    assert wrong.exit_code == 1 and "HTTP 401" in wrong.stderr
    assert missing.exit_code == 2 and "FEDGRID_ADMIN_TOKEN" in missing.stderr


def test_status_shows_cycles_with_admitted_workers(
    grid: Grid, job_file: JobFile
) -> None:
    path, name = job_file(num_cycles=1, cycle_length=120)
    assert run(grid, "push", str(path)).exit_code == 0
    job = Worker(grid.url, retry=RetryPolicy(3, 0.1, 0.5)).new_job(name)
    accepted: list[object] = []
    job.on("accepted", accepted.append)
    job.start()
    try:
        wait_for(lambda: accepted, timeout=30, what="admission")
        as_json = run(grid, "status", name, "--json")
        as_table = run(grid, "status", name)
    finally:
        job.stop()

    cycle = json.loads(as_json.stdout)["status"]["cycles"][0]
    assert (cycle["number"], cycle["state"], cycle["admitted"]) == (1, "open", 1)
    assert cycle["reports"] == 0 and cycle["deadline"] > 0
    assert as_table.exit_code == 0 and "open" in as_table.stdout


def test_checkpoints_pull_and_alias(
    grid: Grid, job_file: JobFile, tmp_path: Path
) -> None:
    path, name = job_file()
    assert run(grid, "push", str(path)).exit_code == 0
    target = tmp_path / "first.state"

    listed = run(grid, "checkpoints", name, "--json")
    pulled = run(grid, "pull", name, "--checkpoint", "1", "-o", str(target))
    aliased = run(grid, "alias", name, "1", "baseline", "--json")
    by_alias = run(
        grid, "pull", name, "--version", "1.0.0", "--checkpoint", "baseline",
        "-o", str(tmp_path / "baseline.state"), "--json",
    )  # fmt: skip
    table = run(grid, "checkpoints", name)

    assert [c["number"] for c in json.loads(listed.stdout)["checkpoints"]] == [1]
    assert pulled.exit_code == 0 and "saved checkpoint 1" in pulled.stdout
    with open(target, "rb") as handle:
        state = load_state_stream(handle)
    for key, tensor in make_job(name=name).trace().state.items():
        assert torch.equal(state[key], tensor)
    assert "baseline" in json.loads(aliased.stdout)["aliases"]
    assert json.loads(by_alias.stdout)["size"] == target.stat().st_size
    assert (tmp_path / "baseline.state").read_bytes() == target.read_bytes()
    assert "baseline" in table.stdout


def test_pull_of_an_unknown_checkpoint_is_one_clear_line(
    grid: Grid, job_file: JobFile, tmp_path: Path
) -> None:
    path, name = job_file()
    assert run(grid, "push", str(path)).exit_code == 0

    result = run(grid, "pull", name, "--checkpoint", "7", "-o", str(tmp_path / "x"))

    assert result.exit_code == 1
    assert "HTTP 404" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_plot_without_metrics_explains_why(grid: Grid, job_file: JobFile) -> None:
    path, name = job_file()
    assert run(grid, "push", str(path)).exit_code == 0

    result = run(grid, "plot", name, "-o", "never.png")

    assert result.exit_code == 1 and "no checkpoint has metrics yet" in result.stderr


def test_plot_draws_each_metric(tmp_path: Path) -> None:
    checkpoints = [
        {"number": 1, "metrics": {}},
        {"number": 3, "metrics": {"loss": 0.5, "accuracy": 0.8}},
        {"number": 2, "metrics": {"loss": 0.9, "accuracy": 0.6}},
    ]
    output = tmp_path / "metrics.png"

    names = plot_metrics(checkpoints, output, title="demo")

    assert names == ["accuracy", "loss"]
    assert metric_series(checkpoints)["loss"] == [(2, 0.9), (3, 0.5)]
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InvalidArgument):
        plot_metrics([{"number": 1, "metrics": {}}], output)


def test_every_command_has_its_own_help() -> None:
    for command in ("push", "jobs", "status", "checkpoints", "pull", "alias", "plot"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0
        assert f"Usage: main {command}" in result.output


def test_plot_draws_the_metrics_of_aggregated_checkpoints(
    grid: Grid, job_file: JobFile, tmp_path: Path
) -> None:
    path, name = job_file(num_cycles=1, max_workers=1, max_diffs=1)
    assert run(grid, "push", str(path)).exit_code == 0
    job = Worker(grid.url, retry=RetryPolicy(3, 0.1, 0.5)).new_job(name)

    def on_accepted(assignment: CycleAssignment) -> None:
        plan = assignment.plans["training_plan"].plan
        result = train(plan, assignment.params, make_partition(5), {"lr": 0.1})
        job.report(
            result.params, sample_count=result.sample_count, metrics=result.metrics
        )

    job.on("accepted", on_accepted)
    job.start()
    assert job.join(60) and job.finished
    image = tmp_path / "metrics.png"

    plotted = run(grid, "plot", name, "-o", str(image))
    checkpoints = json.loads(run(grid, "checkpoints", name, "--json").stdout)

    assert plotted.exit_code == 0 and "accuracy, loss" in plotted.stdout
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert checkpoints["checkpoints"][1]["metrics"]["num_samples"] == 16
