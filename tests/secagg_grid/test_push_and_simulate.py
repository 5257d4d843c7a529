"""Secure aggregation at push (refusals) and in the simulator (same result)."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch

import fedgrid
from fedgrid.errors import ConfigError
from fedgrid.gateway.hosting import JobHost
from fedgrid.jobconfig import ServerConfig
from fedgrid.modelstore.client import ModelStoreClient
from fedgrid.plans.examples import fedavg_iterative, fedavg_list
from tests.worker.sample_job import make_job, make_partition

SECURE = {"enabled": True, "threshold": 3, "neighbours": 4, "clipping_range": 0.5}


def _secure_job(**server: Any) -> fedgrid.JobSpec:
    settings: dict[str, Any] = {
        "max_workers": 5,
        "max_diffs": 5,
        "num_cycles": 2,
        "secure_aggregation": SECURE,
    }
    settings.update(server)
    return make_job(**settings)


@pytest.mark.parametrize(
    ("plan", "style"), [(fedavg_list, "list"), (fedavg_iterative, "iterative")]
)
def test_trace_refuses_averaging_plans_with_secure_aggregation(
    plan: Any, style: str
) -> None:
    job = _secure_job()
    job.averaging_plan = plan
    job.averaging_style = style

    with pytest.raises(ConfigError) as caught:
        job.trace()

    assert "only sees their sum" in str(caught.value)
    assert style in str(caught.value)


@pytest.mark.parametrize("method", ["median", "trimmed_mean"])
def test_trace_refuses_robust_methods_with_secure_aggregation(method: str) -> None:
    job = _secure_job(averaging={"method": method})

    with pytest.raises(ConfigError, match="needs single diffs"):
        job.trace()


def test_hosting_refuses_a_list_plan_with_secure_aggregation() -> None:
    plain = make_job(max_workers=5)
    plain.averaging_plan = fedavg_list
    plain.averaging_style = "list"
    traced = plain.trace()
    traced.server_config = ServerConfig.from_dict(
        {**plain.server_config, "secure_aggregation": SECURE}
    )
    registered: list[object] = []
    # The refusal comes before the model store is called: nothing listens here.
    host = JobHost(ModelStoreClient("127.0.0.1:9"), lambda *a: registered.append(a))

    with pytest.raises(ConfigError, match="averaging plan 'averaging_plan'"):
        host.host(io.BytesIO(b"".join(traced.host_body())))

    assert registered == []


@pytest.mark.parametrize("method", ["fedavg", "mean", "fedadam"])
def test_simulator_with_secure_aggregation_matches_plain_averaging(
    method: str,
) -> None:
    partitions = [make_partition(w, samples=8 * (w + 1)) for w in range(5)]
    secure = _secure_job(averaging={"method": method})
    plain = make_job(
        max_workers=5, max_diffs=5, num_cycles=2, averaging={"method": method}
    )

    got = fedgrid.simulate(secure, partitions)
    expected = fedgrid.simulate(plain, partitions)

    assert [c.checkpoint for c in got.cycles] == [2, 3]
    assert got.cycles[0].metrics["reports_used"] == 5
    for name, tensor in expected.state.items():
        # Diffs here are far inside the clipping range; only rounding differs.
        torch.testing.assert_close(got.state[name], tensor, rtol=0, atol=1e-5)
        assert not torch.equal(got.state[name], secure.initial_state()[name])


def test_simulator_clips_diffs_under_secure_aggregation() -> None:
    partitions = [make_partition(w) for w in range(5)]
    tight = {**SECURE, "clipping_range": 1e-4}
    job = _secure_job(secure_aggregation=tight, num_cycles=1)
    start = job.initial_state()

    result = fedgrid.simulate(job, partitions)

    for name, tensor in result.state.items():
        moved = (start[name] - tensor).abs().max().item()
        assert moved <= 1e-4 + 1e-6  # float32 parameters round the step
    assert any(
        (start[n] - t).abs().max().item() > 5e-5 for n, t in result.state.items()
    )
