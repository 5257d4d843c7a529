"""Fixtures for the browser worker: Chromium, a static server, and page runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from fedgrid.tensors import encode_state_stream
from tests.support import stop_process

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "workers" / "browser"
PAGES = Path(__file__).with_name("pages")
DRIVER = PACKAGE / "tools" / "run-page.mjs"
CHROMIUM = Path("/usr/bin/chromium")

PageRunner = Callable[..., dict[str, Any]]


def _tools_missing() -> str:
    if shutil.which("node") is None:
        return "node is not installed"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing"
    if not (PACKAGE / "node_modules" / "playwright-core").is_dir():
        return "the npm packages of workers/browser are not installed"
    return ""


@pytest.fixture(scope="session")
def browser_tools() -> None:
    """Node, the npm packages and Chromium; installed by install.sh when missing."""
    if _tools_missing():
        result = subprocess.run(
            ["bash", str(PACKAGE / "install.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            pytest.skip(
                "Chromium or the npm packages could not be installed "
                f"(workers/browser/install.sh): {result.stderr[-500:]}"
            )
    missing = _tools_missing()
    if missing:
        pytest.skip(f"browser tests need Chromium and node: {missing}")


@contextmanager
def static_server(fixtures: Path, grid_url: str | None = None) -> Iterator[str]:
    """serve.js on a free port: the package, test pages, fixtures, and /api/."""
    command = [
        "node",
        str(PACKAGE / "serve.js"),
        "--port",
        "0",
        "--mount",
        f"/test={PAGES}",
        "--mount",
        f"/fixtures={fixtures}",
    ]
    if grid_url:
        command += ["--grid", grid_url]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, start_new_session=True, text=True
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if not first:
            raise RuntimeError("serve.js exited before it listened")
        yield f"http://127.0.0.1:{json.loads(first)['port']}"
    finally:
        stop_process(proc)  # type: ignore[arg-type]
        if proc.stdout is not None:
            proc.stdout.close()


def run_page(url: str, timeout: float = 90.0) -> dict[str, Any]:
    """Open url in headless Chromium until the page reports; its result."""
    env = dict(os.environ, FEDGRID_BROWSER_DIR=str(PACKAGE))
    completed = subprocess.run(
        ["node", str(DRIVER), json.dumps({"url": url, "timeout": timeout})],
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        env=env,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if not lines:
        raise AssertionError(
            f"the driver printed nothing (exit {completed.returncode}): "
            f"{completed.stderr[-3000:]}"
        )
    answer: dict[str, Any] = json.loads(lines[-1])
    if "error" in answer:
        raise AssertionError(
            f"the page failed: {answer['error']}\n{completed.stderr[-3000:]}"
        )
    return answer


@pytest.fixture(scope="module")
def fixtures_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-fixtures")


@pytest.fixture(scope="module")
def page_server(browser_tools: None, fixtures_dir: Path) -> Iterator[str]:
    """A static server without a grid, for plan tests."""
    with static_server(fixtures_dir) as url:
        yield url


def write_case(
    folder: Path, name: str, plan_bytes: bytes, inputs: dict[str, torch.Tensor]
) -> str:
    """Store a plan and its inputs where the test pages fetch them."""
    case = folder / name
    case.mkdir(parents=True, exist_ok=True)
    (case / "plan.bin").write_bytes(plan_bytes)
    with open(case / "inputs.bin", "wb") as handle:
        for part in encode_state_stream(inputs):
            handle.write(part)
    return name
