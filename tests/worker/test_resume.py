"""A worker process killed mid-cycle resumes from its state folder and reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from fedgrid.job import TracedJob
from fedgrid.worker import Worker, train
from tests.support import stop_process, wait_for
from tests.worker.conftest import add_job
from tests.worker.contract_gateway import ContractGateway, Outcome
from tests.worker.sample_job import make_partition


def _spawn(url: str, state: Path, mode: str, marker: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tests.worker.crash_worker"]
    return subprocess.Popen([*command, url, str(state), mode, str(marker)])


def test_crashed_worker_resumes_and_reports_before_the_deadline(
    gateway: ContractGateway, traced_job: TracedJob, tmp_path: Path
) -> None:
    add_job(gateway, traced_job, script=[Outcome("accepted", deadline_in=120)])
    state = tmp_path / "state"
    crashed, resumed = tmp_path / "crashed", tmp_path / "resumed"

    first = _spawn(gateway.url, state, "crash", crashed)
    try:
        key = wait_for(lambda: crashed.exists() and crashed.read_text(), timeout=60)
        first.kill()  # SIGKILL: no clean-up runs
        first.wait(10)
    finally:
        stop_process(first)
    second = _spawn(gateway.url, state, "resume", resumed)
    try:
        second.wait(60)
    finally:
        stop_process(second)

    assert second.returncode == 0
    assert json.loads(resumed.read_text()) == {"key": key, "resumed": True}
    assert len(gateway.cycle_requests) == 1  # the cycle was resumed, not re-asked
    assert [report.request_key for report in gateway.reports] == [key]
    whole = train(
        traced_job.plans["training_plan"], traced_job.state, make_partition(1),
        traced_job.client_config,
    )  # fmt: skip
    for name, original in traced_job.state.items():
        torch.testing.assert_close(
            gateway.reports[0].diff[name], original - whole.params[name]
        )
    assert not any(state.rglob("assignment.json"))  # cleared after the report


def test_a_saved_cycle_past_its_deadline_is_dropped(
    gateway: ContractGateway, traced_job: TracedJob, tmp_path: Path
) -> None:
    add_job(gateway, traced_job, script=[Outcome("accepted", deadline_in=120)])
    state = tmp_path / "state"
    marker = tmp_path / "crashed"
    first = _spawn(gateway.url, state, "crash", marker)
    try:
        wait_for(marker.exists, timeout=60)
        first.kill()
        first.wait(10)
    finally:
        stop_process(first)
    saved = next(state.rglob("assignment.json"))
    info = json.loads(saved.read_text())
    info["deadline"] = 1.0
    saved.write_text(json.dumps(info))

    job = Worker(gateway.url, state_dir=state).new_job("tiny")
    accepted: list[object] = []
    job.on("accepted", accepted.append)
    job.start()

    assert job.join(30) and job.finished
    assert accepted == []  # nothing resumed; the grid said the job is finished
    assert len(gateway.cycle_requests) == 2
    assert not saved.exists()
