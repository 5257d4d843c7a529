"""One job inside a worker: its thread asks for cycles, the app trains and reports."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from fedgrid.errors import FedgridError, InvalidArgument
from fedgrid.worker import events as ev
from fedgrid.worker.assignments import (
    accepted_info,
    build_assignment,
    download,
    load_saved,
)
from fedgrid.worker.client import GridClient
from fedgrid.worker.errors import (
    AuthError,
    JobFinished,
    ProtocolError,
    RateLimited,
    Rejected,
    ReportRefused,
    WorkerError,
)
from fedgrid.worker.progress import ProgressStore, folder_name
from fedgrid.worker.report import check_diff, compute_diff, report_body
from fedgrid.worker.secure_rounds import GatewayRounds, SecureRun, mesh_for
from fedgrid.worker.speed import measure
from fedgrid.worker.training import PlanRunner

if TYPE_CHECKING:
    from fedgrid.worker.worker import Worker

logger = logging.getLogger(__name__)

Callback = Callable[[Any], object]
SESSION_MARGIN = 30.0  # seconds: renew a session this long before it expires


class WorkerJob:
    """Runs one job's cycles in a thread of its own until done or stopped.

    Register callbacks with `on(kind, fn)` (kinds: accepted, rejected,
    reported, error, done) or iterate `events()` asynchronously. Callbacks run
    in the job's thread; `report` may be called from any thread.

    With the worker's state_dir, an accepted cycle (request key, session,
    checkpoint, plans) and `save_progress` parameters are kept on disk until
    the report, so a new process resumes the cycle. A session that expired
    meanwhile is renewed; on a job without authentication the grid then sees
    a new worker id and refuses the old key, so the job moves on.
    """

    def __init__(self, worker: Worker, name: str, version: str | None) -> None:
        self.worker = worker
        self.name = name
        self.version = version
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._callbacks: dict[str, list[Callback]] = {kind: [] for kind in ev.KINDS}
        self._streams: list[ev.EventStream] = []
        self._thread: threading.Thread | None = None
        self._assignment: ev.CycleAssignment | None = None
        self._original: dict[str, torch.Tensor] = {}
        self._reported = False
        self._continue = True
        self._session_expires = 0.0
        self._auth: dict[str, Any] = {}
        self._secure: SecureRun | None = None
        self.error: BaseException | None = None
        self.finished = False
        self.client = GridClient(
            worker.url, retry=worker.retry, timeout=worker.timeout, stop=self._stop
        )
        self.store: ProgressStore | None = None
        if worker.state_dir is not None:
            self.store = ProgressStore(worker.state_dir / folder_name(name, version))

    # --- the app's side ----------------------------------------------------

    def on(self, kind: str, callback: Callback) -> Callback:
        """Call callback(data) on every event of this kind; returns callback."""
        if kind not in self._callbacks:
            raise InvalidArgument(f"unknown event {kind!r}; use one of {ev.KINDS}")
        self._callbacks[kind].append(callback)
        return callback

    def events(self) -> ev.EventStream:
        """An async iterator of this job's events from now on."""
        stream = ev.EventStream()
        self._streams.append(stream)
        if self._thread is not None and not self._thread.is_alive():
            stream.push(None)
        return stream

    def start(self) -> WorkerJob:
        """Start asking for cycles in the background."""
        if self._thread is not None:
            raise InvalidArgument(f"job {self.name!r} was started already")
        self._thread = threading.Thread(
            target=self._run, name=f"fedgrid-job-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, wait: bool = True, timeout: float | None = 30.0) -> None:
        """Stop asking for cycles; interrupts any wait at once."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if (
            wait
            and self._thread is not None
            and self._thread is not threading.current_thread()
        ):
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the job to end; True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def assignment(self) -> ev.CycleAssignment | None:
        """The cycle being trained right now, if any."""
        return self._assignment

    @property
    def plans(self) -> dict[str, PlanRunner]:
        """The current cycle's plans: `job.plans["training_plan"](**inputs)`."""
        return self._current().plans

    @property
    def client_config(self) -> dict[str, Any]:
        return self._current().client_config

    def save_progress(self, params: Mapping[str, torch.Tensor]) -> None:
        """Keep partly trained parameters so a restarted worker can go on."""
        self._current()
        if self.store is not None:
            self.store.save_progress(params)

    def report(
        self,
        params: Mapping[str, torch.Tensor] | None = None,
        *,
        diff: Mapping[str, torch.Tensor] | None = None,
        sample_count: int = 1,
        metrics: Mapping[str, float] | None = None,
        next_cycle: bool = True,
        on_progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Upload trained parameters (the diff is computed) or a ready diff.

        With next_cycle (the default) the job then asks for its next cycle;
        otherwise it stops after this report. In a cycle with secure
        aggregation the diff is clipped, quantized and masked and goes in
        through the protocol's rounds instead (SecureAggregationFailed when
        the run cannot finish).
        """
        assignment = self._current()
        if (params is None) == (diff is None):
            raise InvalidArgument("pass either the trained params or diff=, not both")
        if params is not None:
            delta = compute_diff(self._original, params)
        else:
            assert diff is not None
            delta = check_diff(self._original, diff)
        if self._secure is not None:
            return self._report_secure(self._secure, delta, sample_count, next_cycle)
        body = report_body(
            assignment.request_key,
            sample_count,
            metrics or {},
            delta,
            on_progress=on_progress,
        )
        try:
            answer = self._with_session(lambda: self.client.report(body))
        except ReportRefused:
            self._finish_cycle(next_cycle)
            raise
        logger.info(
            "[WorkerJob.report] job=%s cycle=%s samples=%s",
            self.name,
            assignment.cycle_number,
            sample_count,
        )
        self._finish_cycle(next_cycle)
        self._emit(ev.REPORTED, answer)
        return answer

    def _report_secure(
        self,
        run: SecureRun,
        delta: Mapping[str, torch.Tensor],
        sample_count: int,
        next_cycle: bool,
    ) -> dict[str, Any]:
        assignment = self._current()
        values, weight = run.input_of(self._original, delta, sample_count)
        try:
            self._session()
            run.submit(values, weight)
        except WorkerError:
            self._finish_cycle(next_cycle)
            raise
        logger.info(
            "[WorkerJob.report] job=%s cycle=%s secure=1 weight=%s",
            self.name,
            assignment.cycle_number,
            weight,
        )
        answer = {"status": "accepted", "cycle_id": assignment.cycle_id}
        self._finish_cycle(next_cycle)
        self._emit(ev.REPORTED, answer)
        return answer

    # --- the job's thread ----------------------------------------------------

    def _current(self) -> ev.CycleAssignment:
        if self._assignment is None:
            raise InvalidArgument(f"job {self.name!r} has no accepted cycle now")
        return self._assignment

    def _finish_cycle(self, next_cycle: bool) -> None:
        if self.store is not None:
            self.store.clear()
        with self._cond:
            self._reported = True
            self._continue = next_cycle
            self._cond.notify_all()

    def _emit(self, kind: str, data: Any = None) -> None:
        event = ev.Event(kind, data)
        for stream in list(self._streams):
            stream.push(event)
        for callback in list(self._callbacks[kind]):
            try:
                callback(data)
            except Exception:
                logger.exception(
                    "[WorkerJob.emit] job=%s event=%s callback failed", self.name, kind
                )

    def _run(self) -> None:
        try:
            self._loop()
        except JobFinished as exc:
            self.finished = True
            logger.info("[WorkerJob.run] job=%s finished: %s", self.name, exc.message)
            self._emit(ev.DONE, exc.message)
        except WorkerError as exc:
            if not self._stop.is_set():
                self.error = exc
                logger.warning(
                    "[WorkerJob.run] job=%s stopped by error: %s", self.name, exc
                )
                self._emit(ev.ERROR, exc)
        except FedgridError as exc:
            self.error = exc
            logger.warning(
                "[WorkerJob.run] job=%s stopped by error: %s", self.name, exc
            )
            self._emit(ev.ERROR, exc)
        finally:
            self._assignment = None
            self.client.close()
            for stream in list(self._streams):
                stream.push(None)

    def _loop(self) -> None:
        assignment = self._resume()
        while not self._stop.is_set():
            if assignment is None:
                try:
                    assignment = self._ask()
                except Rejected as rejection:
                    self._wait_out(rejection)
                    continue
            with self._cond:
                self._reported = False
            self._assignment = assignment
            self._emit(ev.ACCEPTED, assignment)
            self._await_report(assignment)
            self._assignment = None
            self._end_secure()
            assignment = None
            if not self._continue:
                return

    def _await_report(self, assignment: ev.CycleAssignment) -> None:
        with self._cond:
            while not self._reported and not self._stop.is_set():
                remaining = assignment.deadline - time.time()
                if remaining <= 0:
                    logger.info(
                        "[WorkerJob.wait] job=%s cycle=%s deadline passed unreported",
                        self.name,
                        assignment.cycle_number,
                    )
                    if self.store is not None:
                        self.store.clear()
                    return
                self._cond.wait(remaining)

    def _session(self) -> None:
        if self.client.session_token and time.time() < self._session_expires:
            return
        worker = self.worker
        self._auth = self.client.authenticate(
            self.name, self.version, worker.auth_token
        )
        expires_in = float(self._auth.get("expires_in", 3600))
        self._session_expires = time.time() + max(0.0, expires_in - SESSION_MARGIN)

    def _with_session(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run call; on a 401 (expired session) renew the session once."""
        self._session()
        try:
            return call()
        except AuthError as exc:
            if exc.status != 401:
                raise
            self._session_expires = 0.0
            self.client.session_token = None
            self._session()
            return call()

    def _ask(self) -> ev.CycleAssignment:
        """One cycle request: an assignment, or Rejected with the delay to wait."""

        def request() -> dict[str, Any]:
            speeds: dict[str, float] = {}
            if self._auth.get("requires_speed_test"):
                speeds = measure(self.client, self.worker.speed_test_bytes)
            return self.client.cycle_request(speeds)

        try:
            answer = self._with_session(request)
        except RateLimited as exc:
            raise Rejected(
                exc.code or "rate_limited", exc.message, exc.retry_after
            ) from exc
        status = answer.get("status")
        if status == "accepted":
            return self._accept(answer)
        if status == "finished":
            raise JobFinished(
                str(answer.get("message", "the job is finished")), "job_finished"
            )
        if status == "rejected":
            retry_after = answer.get("retry_after")
            if isinstance(retry_after, bool) or not isinstance(
                retry_after, int | float
            ):
                raise ProtocolError("a rejection without a numeric retry_after")
            raise Rejected(
                str(answer.get("reason", "")),
                str(answer.get("message", "")),
                float(retry_after),
            )
        raise ProtocolError(f"unknown cycle-request status {status!r}")

    def _wait_out(self, rejected: Rejected) -> None:
        """Tell the app, then sleep until the grid's suggested time (or stop)."""
        rejection = ev.Rejection(
            rejected.reason, rejected.message, rejected.retry_after
        )
        logger.info(
            "[WorkerJob.ask] job=%s rejected reason=%s retry_after=%.1fs",
            self.name,
            rejection.reason,
            rejection.retry_after,
        )
        self._emit(ev.REJECTED, rejection)
        self._stop.wait(max(0.0, rejection.retry_after))

    def _accept(self, answer: Mapping[str, Any]) -> ev.CycleAssignment:
        info = accepted_info(answer, self._auth, self.name, self.version)
        self._end_secure()
        terms = info.get("secure_aggregation")
        if terms:
            # Keys and shares go out while the worker downloads and trains.
            rounds = GatewayRounds(self.client, info["request_key"], self._stop)
            mesh = mesh_for(
                info,
                self.client.session_token,
                str(self._auth.get("job_id", "")),
                self.worker.p2p,
            )
            self._secure = SecureRun(
                info["worker_id"],
                terms,
                info.get("differential_privacy"),
                rounds,
                info["deadline"],
                mesh,
            ).start()
        files = download(self.client, info)
        if self.store is not None:
            saved = dict(info, session_token=self.client.session_token)
            saved["session_expires"] = self._session_expires
            self.store.save_cycle(saved, files.checkpoint, files.plans, files.protocols)
        logger.info(
            "[WorkerJob.ask] job=%s accepted cycle=%s checkpoint=%s",
            self.name,
            info["cycle_number"],
            info["checkpoint"],
        )
        self._original = files.checkpoint
        return build_assignment(files, resumed=False)

    def _end_secure(self) -> None:
        """Forget the cycle's secure run, leaving its peers' room if any."""
        run, self._secure = self._secure, None
        if run is not None:
            run.close()

    def _resume(self) -> ev.CycleAssignment | None:
        """The cycle saved by an earlier process, if its deadline has not passed."""
        files = None if self.store is None else load_saved(self.store, self.name)
        if files is None:
            return None
        info = files.info
        if info.get("secure_aggregation"):
            # A secure run's keys lived in the process that ended.
            logger.info(
                "[WorkerJob.resume] job=%s secure cycle=%s cannot resume",
                self.name,
                info["cycle_number"],
            )
            if self.store is not None:
                self.store.clear()
            return None
        self.client.session_token = info.get("session_token")
        self._session_expires = float(info.get("session_expires", 0))
        self._auth = {
            "job": info["job"],
            "version": info["version"],
            "requires_speed_test": bool(info.get("requires_speed_test")),
        }
        logger.info(
            "[WorkerJob.resume] job=%s cycle=%s", self.name, info["cycle_number"]
        )
        self._original = files.checkpoint
        return build_assignment(files, resumed=True)
