"""CLI mistakes end in one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fedgrid.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "not-a-url", "--token", "t", "jobs"], "must start with http://"),
        (["--url", "ftp://grid", "--token", "t", "jobs"], "must start with http://"),
        (["--url", "http://127.0.0.1:9", "jobs"], "an admin token is needed"),
    ],
)
def test_bad_grid_options(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args)

    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_job_file_that_fails_to_load(tmp_path: Path) -> None:
    broken = tmp_path / "job.py"
    broken.write_text("job = (\n")

    result = CliRunner().invoke(main, ["--token", "t", "push", str(broken)])

    assert result.exit_code != 0
    assert "failed to load (line 1): SyntaxError" in result.output
    assert "Traceback" not in result.output


def test_bad_setting_for_stack_status() -> None:
    result = CliRunner(env={"FEDGRID_GATEWAY_PORT": "99999"}).invoke(
        main, ["stack", "status"]
    )

    assert result.exit_code != 0
    assert "FEDGRID_GATEWAY_PORT='99999' is invalid" in result.output
