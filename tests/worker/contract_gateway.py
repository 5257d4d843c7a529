"""A loopback HTTP server speaking the worker routes of docs/http-api.md.

It lets the SDK's timing and fault handling (rejections, 5xx, crashes) be
tested exactly; the same flows also run against the real stack elsewhere.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import torch
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from fedgrid.plans import Plan
from fedgrid.tensors import (
    iter_state_tensors,
    parse_state_chunks,
    read_frames,
    state_stream_bytes,
)
from fedgrid.v1 import report_pb2
from tests.support import free_port


@dataclass
class Outcome:
    """One scripted answer to a cycle request."""

    status: str  # accepted, rejected, finished
    retry_after: float = 0.0
    deadline_in: float = 60.0


@dataclass
class ReceivedReport:
    request_key: str
    worker_id: str
    sample_count: int
    metrics: dict[str, float]
    diff: dict[str, torch.Tensor]


@dataclass
class JobState:
    name: str
    version: str
    model: dict[str, torch.Tensor]
    plans: dict[str, bytes]
    client_config: dict[str, Any]
    requires_speed_test: bool = False
    script: list[Outcome] = field(default_factory=list)
    cycle: int = 0


class ContractGateway:
    """Serve scripted answers; record requests, speeds and reports."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobState] = {}
        self.sessions: dict[str, tuple[str, str]] = {}  # token -> (worker, job)
        self.keys: dict[
            str, tuple[str, str, float]
        ] = {}  # key -> worker, job, deadline
        self.reports: list[ReceivedReport] = []
        self.cycle_requests: list[tuple[float, str, dict[str, Any]]] = []
        self.fail_next: dict[str, int] = {}  # route -> number of 503s to answer
        self.lock = threading.Lock()
        self.app = self._build()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def add_job(
        self, name: str, version: str, model: dict[str, torch.Tensor],
        plan: Plan, client_config: dict[str, Any], **extra: Any,
    ) -> JobState:  # fmt: skip
        job = JobState(
            name, version, model, {"training_plan": plan.to_bytes()},
            client_config, **extra,
        )  # fmt: skip
        self.jobs[name] = job
        return job

    def __enter__(self) -> ContractGateway:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(10)

    def requests_for(self, job: str) -> list[float]:
        with self.lock:
            return [at for at, name, _ in self.cycle_requests if name == job]

    # --- routes ---------------------------------------------------------------

    def _build(self) -> Flask:
        app = Flask("contract-gateway")

        def error(status: int, code: str, message: str) -> Response:
            response = jsonify(error=code, message=message)
            response.status_code = status
            return response

        @app.before_request
        def faults() -> Response | None:
            route = request.path.rsplit("/", 1)[-1]
            with self.lock:
                left = self.fail_next.get(route, 0)
                if left:
                    self.fail_next[route] = left - 1
            if left:
                return error(503, "unavailable", "try again")
            return None

        def session() -> tuple[str, JobState]:
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if token not in self.sessions:
                raise PermissionError
            worker, job = self.sessions[token]
            return worker, self.jobs[job]

        @app.errorhandler(PermissionError)
        def refused(_exc: Exception) -> Response:
            return error(401, "bad_session", "authenticate again")

        @app.post("/api/v1/auth")
        def auth() -> Response:
            body = request.get_json()
            job = self.jobs.get(body.get("job"))
            if job is None:
                return error(404, "unknown_job", f"no job {body.get('job')!r}")
            if body.get("auth_token") == "bad":
                return error(401, "token_refused", "the token's signature is wrong")
            token, worker = uuid.uuid4().hex, uuid.uuid4().hex
            self.sessions[token] = (worker, job.name)
            return jsonify(
                session_token=token, worker_id=worker, job_id=job.name,
                job=job.name, version=job.version,
                requires_speed_test=job.requires_speed_test, expires_in=3600,
            )  # fmt: skip

        @app.get("/api/v1/speed-test/ping")
        def ping() -> Response:
            return jsonify(pong=True)

        @app.get("/api/v1/speed-test/download")
        def download() -> Response:
            return Response(bytes(int(request.args.get("size", 1024))))

        @app.post("/api/v1/speed-test/upload")
        def upload() -> Response:
            return jsonify(received=len(request.get_data()))

        @app.post("/api/v1/cycle-request")
        def cycle_request() -> Response:
            worker, job = session()
            speeds = request.get_json()
            with self.lock:
                self.cycle_requests.append((time.monotonic(), job.name, speeds))
                outcome = job.script.pop(0) if job.script else Outcome("finished")
            if job.requires_speed_test and "download_kbps" not in speeds:
                return error(400, "speeds_required", "run the speed test")
            if outcome.status == "rejected":
                response = jsonify(
                    status="rejected", reason="cycle_full", message="come back",
                    retry_after=outcome.retry_after,
                )  # fmt: skip
                response.headers["Retry-After"] = str(int(outcome.retry_after) or 1)
                return response
            if outcome.status == "finished":
                return jsonify(status="finished", reason="job_finished", message="done")
            job.cycle += 1
            key = uuid.uuid4().hex
            deadline = time.time() + outcome.deadline_in
            self.keys[key] = (worker, job.name, deadline)
            return jsonify(
                status="accepted", request_key=key, cycle_id=f"c{job.cycle}",
                cycle_number=job.cycle, checkpoint=job.cycle, deadline=deadline,
                plans={name: ["ops"] for name in job.plans}, protocols=[],
                client_config=job.client_config,
            )  # fmt: skip

        def assignment(worker: str) -> JobState:
            key = request.args.get("request_key", "")
            if key not in self.keys or self.keys[key][0] != worker:
                raise PermissionError
            return self.jobs[self.keys[key][1]]

        @app.get("/api/v1/model")
        def model() -> Response:
            worker, _ = session()
            job = assignment(worker)
            blob = state_stream_bytes(job.model)
            response = Response(blob, mimetype="application/x-protobuf")
            response.headers["X-Fedgrid-Digest"] = hashlib.sha256(blob).hexdigest()
            return response

        @app.get("/api/v1/plans/<name>")
        def plan(name: str) -> Response:
            worker, _ = session()
            job = assignment(worker)
            return Response(job.plans[name], mimetype="application/x-protobuf")

        @app.post("/api/v1/report")
        def report() -> Response:
            worker, _ = session()
            frames = read_frames(io.BytesIO(request.get_data()))
            header = report_pb2.Report.FromString(next(frames))
            owner = self.keys.get(header.request_key)
            if owner is None:
                return error(404, "unknown_key", "no such request key")
            if owner[0] != worker:
                return error(403, "wrong_worker", "not your key")
            if time.time() > owner[2]:
                return error(409, "deadline_passed", "too late")
            if any(r.request_key == header.request_key for r in self.reports):
                return error(409, "already_reported", "reported before")
            diff = dict(iter_state_tensors(parse_state_chunks(frames)))
            self.reports.append(
                ReceivedReport(
                    header.request_key,
                    worker,
                    header.sample_count,
                    dict(header.metrics),
                    diff,
                )
            )
            return jsonify(status="accepted", cycle_id="c")

        return app
