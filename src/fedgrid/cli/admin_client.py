"""The gateway's admin routes as Python calls, for the `fedgrid` CLI."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fedgrid.worker.client import API, GridClient, RetryPolicy, SizedBody
from fedgrid.worker.errors import ProtocolError

ADMIN_RETRY = RetryPolicy(attempts=3, base_delay=0.5, max_delay=5.0)
DOWNLOAD_BLOCK = 256 * 1024


def _name(value: str) -> str:
    return quote(value, safe="")


class AdminClient:
    """Calls `/api/v1/admin/...` with the admin token."""

    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        self.grid = GridClient(url, retry=ADMIN_RETRY, timeout=timeout)
        self.grid.session_token = token

    def close(self) -> None:
        self.grid.close()

    @staticmethod
    def _version(version: str | None) -> dict[str, str]:
        return {"version": version} if version else {}

    def push(
        self, frames: list[bytes], on_progress: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        """Host a job from its framed HostJobPart stream."""
        body = SizedBody(lambda: frames, sum(map(len, frames)), on_progress)
        headers = {"Content-Type": "application/x-protobuf"}
        response = self.grid.request(
            "POST", f"{API}/admin/jobs", data=body, headers=headers
        )
        return _object(response.json())

    def jobs(self) -> list[dict[str, Any]]:
        answer = self.grid.get_json(f"{API}/admin/jobs")
        jobs = answer.get("jobs")
        if not isinstance(jobs, list):
            raise ProtocolError("the grid's job list has no `jobs` array")
        return [_object(job) for job in jobs]

    def job(self, name: str, version: str | None) -> dict[str, Any]:
        return self.grid.get_json(
            f"{API}/admin/jobs/{_name(name)}", params=self._version(version)
        )

    def checkpoints(self, name: str, version: str | None) -> list[dict[str, Any]]:
        answer = self.grid.get_json(
            f"{API}/admin/jobs/{_name(name)}/checkpoints",
            params=self._version(version),
        )
        checkpoints = answer.get("checkpoints")
        if not isinstance(checkpoints, list):
            raise ProtocolError("the grid's answer has no `checkpoints` array")
        return [_object(item) for item in checkpoints]

    def alias(
        self, name: str, version: str | None, checkpoint: int, alias: str
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"checkpoint": checkpoint, **self._version(version)}
        response = self.grid.request(
            "PUT",
            f"{API}/admin/jobs/{_name(name)}/aliases/{_name(alias)}",
            json_body=body,
        )
        return _object(response.json())

    def pull(
        self,
        name: str,
        version: str | None,
        checkpoint: str,
        target: Path,
        on_start: Callable[[int | None], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Save a checkpoint's state stream to target, checking its digest."""
        path = f"{API}/admin/jobs/{_name(name)}/checkpoints/{_name(checkpoint)}"
        response = self.grid.request(
            "GET", path, params=self._version(version), stream=True
        )
        length = response.headers.get("Content-Length")
        if on_start is not None:
            on_start(int(length) if length and length.isdigit() else None)
        expected = response.headers.get("X-Fedgrid-Digest", "").lower()
        digest = hashlib.sha256()
        partial = target.with_name(target.name + ".part")
        received = 0
        with response, open(partial, "wb") as handle:
            for block in response.iter_content(DOWNLOAD_BLOCK):
                handle.write(block)
                digest.update(block)
                received += len(block)
                if on_progress is not None:
                    on_progress(received)
        if expected and digest.hexdigest() != expected:
            partial.unlink(missing_ok=True)
            raise ProtocolError(
                f"checkpoint download is damaged: sha256 {digest.hexdigest()} "
                f"but the grid says {expected}; pull again"
            )
        partial.replace(target)
        return {
            "job": name,
            "checkpoint": response.headers.get("X-Fedgrid-Checkpoint", checkpoint),
            "digest": digest.hexdigest(),
            "size": received,
            "path": str(target),
        }


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError("expected a JSON object from the grid")
    return value
