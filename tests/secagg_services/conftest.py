"""A real grid for the secure aggregation wiring tests, one per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.worker.real_stack import Grid, grid_settings, running_grid


@pytest.fixture(scope="module")
def grid(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    settings = grid_settings(database_url, tmp_path_factory.mktemp("secure-grid"))
    with running_grid(settings) as running:
        yield running


# The cycle manager's in-process replica fixtures, for the rules tests.
from tests.cycles.conftest import client, replica, settings, start_replica  # noqa: E402

__all__ = ["client", "grid", "replica", "settings", "start_replica"]
