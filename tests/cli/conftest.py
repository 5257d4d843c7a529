"""CLI fixtures: one real grid per module and job files for it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.worker.real_stack import Grid, grid_settings, running_grid


@pytest.fixture(scope="module")
def grid(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    settings = grid_settings(database_url, tmp_path_factory.mktemp("cli-grid"))
    with running_grid(settings) as running:
        yield running


@pytest.fixture
def job_file(tmp_path: Path) -> Callable[..., tuple[Path, str]]:
    """Write a job file for a uniquely named sample job; returns (path, name)."""

    def write(**server: object) -> tuple[Path, str]:
        name = f"cli-{uuid.uuid4().hex[:8]}"
        path = tmp_path / f"{name}.py"
        path.write_text(
            "from tests.worker.sample_job import make_job\n\n"
            f"job = make_job(name={name!r}, **{server!r})\n"
        )
        return path, name

    return write
