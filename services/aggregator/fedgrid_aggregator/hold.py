"""Test-only: make tasks wait while a file exists, to kill a worker mid-task."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05


def marker_path(hold_file: Path, cycle_id: str) -> Path:
    """The file a held task writes (with its pid) once it is waiting."""
    return hold_file.with_name(f"{hold_file.name}.{cycle_id}.held")


def hold_while_file_exists(hold_file: str) -> Callable[[str], None] | None:
    """A hook for FEDGRID_AGGREGATOR_TEST_HOLD_FILE; None when it is unset.

    Only tests set it: a task that reaches the hook writes a marker next to the
    file and waits until the file is deleted.
    """
    if not hold_file:
        return None
    path = Path(hold_file)

    def hold(cycle_id: str) -> None:
        if not path.exists():
            return
        marker = marker_path(path, cycle_id)
        marker.write_text(str(os.getpid()))
        logger.warning("[Aggregator.TestHold] holding cycle=%s", cycle_id)
        while path.exists():
            time.sleep(POLL_SECONDS)

    return hold
