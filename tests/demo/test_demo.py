"""The demo end to end, smaller: CLI, stack, worker processes, every service."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict

import pytest

from fedgrid.config import Settings
from fedgrid.demo.data import split

pytestmark = pytest.mark.slow


def test_partitions_are_uneven_and_cover_the_training_data() -> None:
    partitions, held_out = split(8)

    sizes = [len(p) for p in partitions]
    label_mixes = [set(p.labels.tolist()) for p in partitions]
    assert sum(sizes) + len(held_out) == 1797
    assert max(sizes) > 2 * min(sizes)
    assert len({frozenset(mix) for mix in label_mixes}) > 1 or min(sizes) != max(sizes)
    assert len(set(held_out.labels.tolist())) == 10


def test_demo_trains_through_the_whole_grid(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDGRID_")}
    for key, value in asdict(settings).items():
        if value not in (None, ""):
            env[f"FEDGRID_{key.upper()}"] = str(value)

    small = ["--workers", "3", "--cycles", "2", "--min-accuracy", "0.6"]
    done = subprocess.run(
        [sys.executable, "-m", "fedgrid.demo", *small, "--timeout", "300"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    final = re.search(r"final_accuracy=([0-9.]+) checkpoints=(\d+)\s*$", done.stdout)
    assert final is not None, output
    assert int(final.group(2)) == 3
    scores = [float(s) for s in re.findall(r"^\s+\d+\s+([0-9.]+)$", done.stdout, re.M)]
    assert scores[0] < 0.3 < scores[-1]
    assert (settings.var_dir / "demo" / "metrics.png").stat().st_size > 1000
    assert not (settings.var_dir / "demo" / "stack" / "stack.json").exists()
