"""DP through the real cycle manager and aggregator: epsilon stored, budget stops."""

from __future__ import annotations

import json
import uuid

import torch

from fedgrid.privacy.accountant import PrivacyParameters, epsilon
from fedgrid.tensors import state_stream_bytes
from fedgrid.v1 import model_store_pb2 as pb
from tests.aggregator.conftest import Grid, Upload, grid, grid_settings, model_state

__all__ = ["grid", "grid_settings"]  # fixtures shared with the aggregator tests

PARAMETERS = PrivacyParameters(
    sampling_rate=0.5, noise_multiplier=1.0, target_delta=1e-5
)


def host_private(grid: Grid, max_epsilon: float) -> pb.Job:
    config = {
        "max_workers": 2,
        "pool_selection": "iterate",
        "cycle_length": 600,
        "num_cycles": 10,
        "population_size": 4,
        "differential_privacy": {
            "clipping_norm": 0.5,
            "noise_multiplier": 1.0,
            "target_delta": 1e-5,
            "max_epsilon": max_epsilon,
        },
    }
    header = pb.HostJobHeader(
        name=f"dp-{uuid.uuid4().hex[:10]}",
        version="1.0.0",
        client_config_json="{}",
        server_config_json=json.dumps(config),
    )
    model = [(pb.BlobRef(kind=pb.BlobRef.MODEL), [state_stream_bytes(model_state())])]
    job = grid.models.host_job(header, model)
    grid.cycles.register_job(
        job.id, job.name, job.version, header.server_config_json, 1
    )
    return job


def big_diff(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(v.shape, generator=generator) * 5
        for k, v in model_state().items()
    }


def test_max_epsilon_stops_the_job_after_the_last_affordable_cycle(grid: Grid) -> None:
    budget = (epsilon(PARAMETERS, 2) + epsilon(PARAMETERS, 3)) / 2
    job = host_private(grid, budget)
    aggregator = grid.aggregator()

    for number in (1, 2):
        cycle_id = grid.run_cycle(job, [Upload(big_diff(number)), Upload(big_diff(9))])
        outcome = aggregator.aggregate(job.id, cycle_id, number)
        assert (outcome.status, outcome.checkpoint_number) == ("stored", number + 1)

    stored = {c.number: c.metrics for c in grid.models.list_checkpoints(job.name)}
    assert stored[2]["epsilon"] == epsilon(PARAMETERS, 1)
    assert stored[3]["epsilon"] == epsilon(PARAMETERS, 2)
    status = grid.cycles.job_status(job.id)
    assert status.state == "finished"
    assert status.finish_reason.startswith("max_epsilon reached: after 2 cycles")
    answer = grid.cycles.request_cycle(job.id, "late-worker")
    assert answer.WhichOneof("outcome") == "rejected"
    assert answer.rejected.reason == 5  # JOB_FINISHED
