"""Job files: JobSpec validation, tracing and the hosting stream `push` sends."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from fedgrid.errors import ConfigError
from fedgrid.job import JobSpec, load_job
from fedgrid.plans import Plan, PlanKind
from fedgrid.tensors import load_state_stream, read_frames
from fedgrid.v1 import model_store_pb2 as ms
from tests.worker.sample_job import make_job

SAMPLE = Path(__file__).parents[1] / "worker" / "sample_job.py"


def _parts(frames: list[bytes]) -> list[ms.HostJobPart]:
    stream = io.BytesIO(b"".join(frames))
    return [ms.HostJobPart.FromString(payload) for payload in read_frames(stream)]


def _blobs(parts: list[ms.HostJobPart]) -> dict[tuple[int, str, str], bytes]:
    blobs: dict[tuple[int, str, str], bytes] = {}
    current: tuple[int, str, str] | None = None
    for part in parts[1:]:
        if part.WhichOneof("part") == "blob":
            current = (part.blob.kind, part.blob.name, part.blob.format)
            blobs[current] = b""
        else:
            assert current is not None
            blobs[current] += part.data
    return blobs


def test_hosting_stream_holds_header_model_plans_and_protocols() -> None:
    def mean(
        avg: dict[str, torch.Tensor], diff: dict[str, torch.Tensor], n: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return {key: avg[key] + (diff[key] - avg[key]) / n for key in avg}

    spec = make_job(name="hosted", version="2.1.0")
    spec.averaging_plan = mean
    spec.protocols = {"secagg+": {"min_group_size": 3}}
    traced = spec.trace()

    parts = _parts(list(traced.host_parts(chunk_bytes=100)))
    blobs = _blobs(parts)

    header = parts[0].header
    assert (header.name, header.version, header.averaging_plan) == (
        "hosted", "2.1.0", "averaging_plan",
    )  # fmt: skip
    assert json.loads(header.client_config_json) == {"lr": 0.1, "epochs": 1}
    assert json.loads(header.server_config_json)["max_workers"] == 2
    model = load_state_stream(io.BytesIO(blobs[(ms.BlobRef.MODEL, "", "")]))
    assert list(model) == [name for name, _ in spec.model.named_parameters()]
    assert all(torch.equal(model[k], v) for k, v in traced.state.items())
    training = Plan.from_bytes(blobs[(ms.BlobRef.PLAN, "training_plan", "ops")])
    averaging = Plan.from_bytes(blobs[(ms.BlobRef.PLAN, "averaging_plan", "ops")])
    assert training.kind is PlanKind.TRAINING
    assert averaging.kind is PlanKind.AVERAGING_ITERATIVE
    protocol = blobs[(ms.BlobRef.PROTOCOL, "secagg+", "")]
    assert json.loads(protocol) == {"min_group_size": 3}
    assert all(len(p.data) <= 100 for p in parts if p.WhichOneof("part") == "data")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": "1.0"}, "is not a semantic version"),
        ({"name": "../etc"}, "job name '../etc'"),
        ({"averaging_style": "tree"}, "averaging_style must be one of"),
        ({"protocols": {"homemade": {}}}, "protocol 'homemade' is not a built-in"),
    ],
)
def test_job_spec_refuses_bad_fields(change: dict[str, object], message: str) -> None:
    spec = make_job()
    fields = {**spec.__dict__, **change}

    with pytest.raises(ConfigError, match=message):
        JobSpec(**fields)  # type: ignore[arg-type]


def test_trace_refuses_configs_with_a_message_naming_the_field() -> None:
    bad_server = make_job(min_diffs=5)
    missing_lr = make_job()
    missing_lr.client_config = {"epochs": 1}

    with pytest.raises(ConfigError, match="min_diffs <= max_diffs <= max_workers"):
        bad_server.trace()
    with pytest.raises(ConfigError, match="hyperparameter 'lr' must have a value"):
        missing_lr.trace()


def test_load_job_runs_the_file_and_finds_its_spec(tmp_path: Path) -> None:
    renamed = tmp_path / "renamed.py"
    renamed.write_text(
        "from tests.worker.sample_job import make_job\nmine = make_job()\n"
    )
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")

    assert load_job(SAMPLE).name == "tiny"
    assert load_job(renamed).name == "tiny"
    with pytest.raises(ConfigError, match="must define `job = JobSpec"):
        load_job(empty)
    with pytest.raises(ConfigError, match="does not exist"):
        load_job(tmp_path / "missing.py")
