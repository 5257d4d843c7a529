"""Pure parts of the SDK: report bodies, backoff, progress files, plan runners."""

from __future__ import annotations

import io
import json
import random
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fedgrid.errors import InvalidArgument
from fedgrid.job import TracedJob
from fedgrid.tensors import load_state_stream, read_frames, state_stream_bytes
from fedgrid.v1 import report_pb2
from fedgrid.worker.client import RetryPolicy
from fedgrid.worker.progress import ProgressStore, folder_name
from fedgrid.worker.report import (
    check_diff,
    compute_diff,
    report_body,
    state_stream_size,
)
from fedgrid.worker.training import PlanRunner, hyperparameters, train
from tests.worker.sample_job import make_partition


def test_report_body_is_a_framed_report_then_the_diff_of_announced_length() -> None:
    diff = {
        "w": torch.arange(3000, dtype=torch.float32).reshape(30, 100),
        "b": torch.zeros(0),
        "n": torch.tensor(7, dtype=torch.int64),
    }

    body = report_body("key-1", 12, {"loss": 0.5}, diff, chunk_bytes=1000)
    data = b"".join(body)

    assert len(body) == len(data)
    assert state_stream_size(diff, 1000) == len(state_stream_bytes(diff, 1000))
    frames = read_frames(io.BytesIO(data))
    header = report_pb2.Report.FromString(next(frames))
    assert (header.request_key, header.sample_count) == ("key-1", 12)
    assert dict(header.metrics) == {"loss": 0.5}
    rest = data[4 + len(header.SerializeToString()) :]
    decoded = load_state_stream(io.BytesIO(rest))
    assert all(torch.equal(decoded[name], diff[name]) for name in diff)


def test_report_body_refuses_bad_counts_and_metrics() -> None:
    diff = {"w": torch.zeros(2)}

    with pytest.raises(InvalidArgument, match="sample_count"):
        report_body("k", 0, {}, diff)
    with pytest.raises(InvalidArgument, match="metric 'loss' is not finite"):
        report_body("k", 1, {"loss": float("nan")}, diff)


def test_diff_is_original_minus_trained_and_is_checked() -> None:
    original = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5])}
    trained = {"w": torch.tensor([0.5, 2.5]), "b": torch.tensor([0.0])}

    diff = compute_diff(original, trained)

    assert torch.equal(diff["w"], torch.tensor([0.5, -0.5]))
    assert torch.equal(diff["b"], torch.tensor([0.5]))
    with pytest.raises(InvalidArgument, match="shape"):
        compute_diff(original, {"w": torch.zeros(3), "b": torch.zeros(1)})
    with pytest.raises(InvalidArgument, match="NaN"):
        check_diff(original, {"w": torch.tensor([float("nan"), 0.0]), "b": diff["b"]})
    with pytest.raises(InvalidArgument, match="float64"):
        check_diff(original, {"w": diff["w"].double(), "b": diff["b"]})


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(attempts=6, base_delay=0.5, max_delay=3.0)
    rng = random.Random(1)

    delays = [
        [policy.delay(attempt, rng) for attempt in range(1, 7)] for _ in range(50)
    ]

    for attempt, ceiling in enumerate([0.5, 1.0, 2.0, 3.0, 3.0, 3.0]):
        seen = [row[attempt] for row in delays]
        assert all(ceiling / 2 <= delay <= ceiling for delay in seen)
        assert len(set(seen)) > 1  # jittered, not in lock-step


def test_progress_store_round_trip_and_private_assignment(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path / folder_name("my job/../x", None))
    checkpoint = {"w": torch.randn(4, 3)}

    store.save_cycle(
        {"request_key": "k", "deadline": 1e12}, checkpoint, {"p": b"P"}, {}
    )
    store.save_progress({"w": torch.ones(4, 3)})

    assert store.folder.parent == tmp_path
    assert store.load_assignment() == {"request_key": "k", "deadline": 1e12}
    assert torch.equal(store.load_checkpoint()["w"], checkpoint["w"])
    assert store.load_blobs("plans", ["p"]) == {"p": b"P"}
    progress = store.load_progress()
    assert progress is not None and torch.equal(progress["w"], torch.ones(4, 3))
    mode = (store.folder / "assignment.json").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    store.clear()
    assert store.load_assignment() is None and store.load_progress() is None


def test_damaged_assignment_file_reads_as_none(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path / "job")
    store.save_cycle({"request_key": "k"}, {"w": torch.zeros(1)}, {}, {})
    (store.folder / "assignment.json").write_text("{not json")

    assert store.load_assignment() is None
    with pytest.raises(InvalidArgument):
        ProgressStore(tmp_path / "none").save_progress({"w": torch.zeros(1)})


def test_plan_runner_calls_the_interpreter(traced_job: TracedJob) -> None:
    plan = traced_job.plans["training_plan"]
    runner = PlanRunner(plan)
    batch = make_partition(4)[0]

    outputs = runner(traced_job.state, x=batch["x"], y=batch["y"], lr=torch.tensor(0.1))
    result = train(plan, traced_job.state, [batch], {"lr": 0.1})

    assert runner.name == "training_plan"
    assert float(outputs["loss"]) == pytest.approx(result.metrics["loss"])
    assert torch.equal(outputs["out.bias"], result.params["out.bias"])
    with pytest.raises(InvalidArgument, match="needs hyperparameter 'lr'"):
        hyperparameters(plan, {})


def test_import_fedgrid_stays_light_and_exports_lazily() -> None:
    code = (
        "import sys, fedgrid; light = 'torch' not in sys.modules; "
        "from fedgrid import JobSpec, simulate; "
        "print(light, JobSpec.__name__, callable(simulate), callable(fedgrid.simulate))"
    )

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert out.split() == ["True", "JobSpec", "True", "True"]


def test_folder_names_cannot_escape_the_state_dir() -> None:
    assert "/" not in folder_name("../../etc", "1.0.0")
    assert json.dumps(folder_name("a b", None)) == '"a_b_newest"'
