"""Fixtures for the worker SDK: a traced sample job and a contract gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fedgrid.job import TracedJob
from tests.worker.contract_gateway import ContractGateway
from tests.worker.sample_job import make_job


@pytest.fixture(scope="session")
def traced_job() -> TracedJob:
    return make_job().trace()


@pytest.fixture
def gateway(traced_job: TracedJob) -> Iterator[ContractGateway]:
    with ContractGateway() as server:
        yield server


def add_job(
    gateway: ContractGateway, traced: TracedJob, name: str = "tiny", **extra: object
) -> None:
    gateway.add_job(
        name,
        traced.spec.version,
        traced.state,
        traced.plans["training_plan"],
        traced.client_config,
        **extra,
    )
