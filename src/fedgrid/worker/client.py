"""The gateway's HTTP API as Python calls, with bounded retries on faults."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import requests

from fedgrid.errors import InvalidArgument
from fedgrid.worker.errors import (
    ProtocolError,
    RateLimited,
    ServerUnavailable,
    error_for_status,
)

logger = logging.getLogger(__name__)

API = "/api/v1"
USER_AGENT = "fedgrid-worker/0.1"
RETRY_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in attempts and delay."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number attempt (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return rng.uniform(ceiling / 2, ceiling)


class SizedBody:
    """An iterable request body of known length, streamed with Content-Length.

    `on_progress` is called with the bytes sent so far, for progress bars.
    """

    def __init__(
        self,
        parts: Callable[[], Iterable[bytes]],
        length: int,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self._parts = parts
        self._length = length
        self._on_progress = on_progress

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for part in self._parts():
            sent += len(part)
            yield part
            if self._on_progress is not None:
                self._on_progress(sent)


class GridClient:
    """Calls one grid's HTTP API; safe to share between threads of one job.

    Connection errors and 5xx answers are retried with backoff and jitter up to
    the policy's bound; 4xx answers raise at once with the grid's error code.
    `stop` interrupts a backoff wait (used when a job is stopped).
    """

    def __init__(
        self,
        url: str,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidArgument(
                f"grid URL {url!r} must start with http:// or https:// and name a "
                "host, e.g. http://127.0.0.1:8080"
            )
        self.url = url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.session_token: str | None = None
        self._stop = stop or threading.Event()
        self._rng = rng or random.Random()
        self._http = requests.Session()
        self._http.headers["User-Agent"] = USER_AGENT

    def close(self) -> None:
        """Release pooled connections."""
        self._http.close()

    # --- transport -------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Mapping[str, Any] | None = None,
        data: Any = None,
        params: Mapping[str, Any] | None = None,
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send one request, retrying faults; return a 2xx response."""
        url = f"{self.url}{path}"
        all_headers = dict(headers or {})
        bearer = token if token is not None else self.session_token
        if bearer:
            all_headers["Authorization"] = f"Bearer {bearer}"
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    method,
                    url,
                    json=json_body,
                    data=data,
                    params=params,
                    headers=all_headers,
                    stream=stream,
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                fault = f"no answer from {self.url} ({type(exc).__name__})"
                self._backoff(attempt, method, path, fault, exc)
                continue
            if response.status_code in RETRY_STATUSES:
                fault = f"HTTP {response.status_code}"
                error = _error_of(response)
                response.close()
                self._backoff(attempt, method, path, fault, error)
                continue
            if response.status_code >= 400:
                raise _error_of(response)
            return response

    def _backoff(
        self, attempt: int, method: str, path: str, fault: str, cause: Exception
    ) -> None:
        if attempt >= self.retry.attempts:
            raise ServerUnavailable(
                f"{method} {path} failed {attempt} times, last with {fault}; "
                "check that the grid URL is right and the grid is up",
                code="unavailable",
            ) from cause
        delay = self.retry.delay(attempt, self._rng)
        logger.info(
            "[GridClient.request] path=%s fault=%s attempt=%s retry_in=%.2fs",
            path,
            fault,
            attempt,
            delay,
        )
        if self._stop.wait(delay):
            raise ServerUnavailable(f"{method} {path} interrupted by stop", "stopped")

    def get_json(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """GET a JSON object."""
        return _json_of(self.request("GET", path, **kwargs))

    def post_json(
        self, path: str, body: Mapping[str, Any], **kwargs: Any
    ) -> dict[str, Any]:
        """POST a JSON object, read a JSON object."""
        return _json_of(self.request("POST", path, json_body=body, **kwargs))

    # --- worker routes ---------------------------------------------------

    def authenticate(
        self, job: str, version: str | None, auth_token: str | None
    ) -> dict[str, Any]:
        """Open a session for a job; keeps the session token for later calls."""
        body: dict[str, Any] = {"job": job}
        if version:
            body["version"] = version
        if auth_token:
            body["auth_token"] = auth_token
        answer = self.post_json(f"{API}/auth", body, token="")
        token = answer.get("session_token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("the grid's auth answer has no session_token")
        self.session_token = token
        return answer

    def cycle_request(self, speeds: Mapping[str, float]) -> dict[str, Any]:
        """Ask for a seat in the current cycle (accepted, rejected or finished)."""
        return self.post_json(f"{API}/cycle-request", dict(speeds))

    def download_model(self, request_key: str) -> requests.Response:
        """The cycle's checkpoint as a streamed response (framed state stream)."""
        return self.request(
            "GET", f"{API}/model", params={"request_key": request_key}, stream=True
        )

    def download_plan(self, name: str, request_key: str, fmt: str = "ops") -> bytes:
        """A plan's bytes in the given format."""
        params = {"request_key": request_key, "format": fmt}
        return self.request("GET", f"{API}/plans/{name}", params=params).content

    def download_protocol(self, name: str, request_key: str) -> bytes:
        """A protocol's bytes."""
        params = {"request_key": request_key}
        return self.request("GET", f"{API}/protocols/{name}", params=params).content

    def report(self, body: SizedBody) -> dict[str, Any]:
        """Upload a framed Report followed by the framed diff."""
        headers = {"Content-Type": "application/x-protobuf"}
        return _json_of(
            self.request("POST", f"{API}/report", data=body, headers=headers)
        )


def _json_of(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise ProtocolError(
            f"expected JSON from {response.url}, got {response.text[:80]!r}"
        ) from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"expected a JSON object from {response.url}")
    return data


def _error_of(response: requests.Response) -> Exception:
    """The SDK exception for an error answer, with the grid's code and message."""
    code, message = "", response.reason or "error"
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        code = str(data.get("error", ""))
        message = str(data.get("message", message))
    if response.status_code == 429:
        return RateLimited(
            message, code, 429, retry_after=retry_after_of(response, default=1.0)
        )
    return error_for_status(response.status_code, code, message)


def retry_after_of(response: requests.Response, default: float) -> float:
    """Seconds from a Retry-After header, or default when absent or a date."""
    raw = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return default


def wait_seconds(deadline: float) -> float:
    """Seconds from now until a wall-clock deadline (never negative)."""
    return max(0.0, deadline - time.time())
