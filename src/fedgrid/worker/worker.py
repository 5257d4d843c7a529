"""The Worker: one grid URL, one identity, any number of jobs at once."""

from __future__ import annotations

import threading
from pathlib import Path

from fedgrid.worker.client import RetryPolicy
from fedgrid.worker.job_runner import WorkerJob
from fedgrid.worker.p2p import P2PConfig
from fedgrid.worker.speed import DEFAULT_TEST_BYTES


class Worker:
    """Joins jobs on one grid; each job runs in its own thread with its own state.

    `auth_token` is the JWT the grid verifies when a job requires
    authentication. With `state_dir`, each job keeps its current cycle on
    disk so a new process with the same folder resumes it. `p2p` says how
    secure aggregation over WebRTC reaches peers (P2PConfig() by default).
    """

    def __init__(
        self,
        url: str,
        auth_token: str | None = None,
        state_dir: str | Path | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        speed_test_bytes: int = DEFAULT_TEST_BYTES,
        p2p: P2PConfig | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.auth_token = auth_token
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.speed_test_bytes = speed_test_bytes
        self.p2p = p2p
        self._jobs: list[WorkerJob] = []
        self._lock = threading.Lock()

    def new_job(self, name: str, version: str | None = None) -> WorkerJob:
        """A job to run; the newest version when version is omitted."""
        job = WorkerJob(self, name, version)
        with self._lock:
            self._jobs.append(job)
        return job

    @property
    def jobs(self) -> list[WorkerJob]:
        with self._lock:
            return list(self._jobs)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop every job and wait for their threads."""
        for job in self.jobs:
            job.stop(wait=False)
        for job in self.jobs:
            job.join(timeout)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
