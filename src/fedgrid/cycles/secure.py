"""Secure cycles: admission closing, the SecAgg rounds, and the cycle's end.

A cycle of a job with secure_aggregation admits workers until it fills or
its admission time (the advertise round's share of cycle_length) ends. Then
the run opens with the admitted workers, its rounds take messages through
the cycle manager, and when the unmask round closes the cycle closes for
aggregation (or fails with the run's reason and the next cycle opens).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fedgrid.cycles.closing import CycleCloser, new_cycle_id
from fedgrid.cycles.live_state import LiveState
from fedgrid.errors import ConfigError, Conflict, InvalidArgument, NotFound
from fedgrid.jobconfig import ServerConfig
from fedgrid.secagg.averaging import params_for
from fedgrid.secagg.driver import Round
from fedgrid.secagg.errors import SecAggError
from fedgrid.secagg.rounds import DONE, FAILED, ROUND_ENDS, SecAggRounds

logger = logging.getLogger(__name__)

ADMISSION_SHARE = ROUND_ENDS[Round.ADVERTISE]
SETUP = "setup"
ROUND_NAMES = {round_.name.lower(): round_ for round_ in Round}


@dataclass(frozen=True)
class Fetched:
    """The grid's message for a worker, if ready, and where the run stands."""

    ready: bool
    payload: bytes = b""
    current_round: str = ""
    round_deadline: float = 0.0


def round_named(name: str) -> Round:
    """A round from its wire name (advertise, share_keys, masked_input, unmask)."""
    try:
        return ROUND_NAMES[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown secure aggregation round {name!r}; use one of "
            f"{sorted(ROUND_NAMES)}"
        ) from None


class SecureCycles:
    """The secure side of the cycle rules, over live state and the run's rounds."""

    def __init__(
        self, live: LiveState, rounds: SecAggRounds, closer: CycleCloser
    ) -> None:
        self.live = live
        self.rounds = rounds
        self.closer = closer

    # --- admission ---------------------------------------------------------

    def start(self, cycle_id: str) -> None:
        """Close admission if due and open the run with the admitted workers."""
        result = self.live.start_secure(cycle_id, new_cycle_id())
        if result["outcome"] == "failed":
            self.closer.record_end(cycle_id, result["job_id"], str(result["opened"]))
            return
        if result["outcome"] != "started":
            return
        job = self.live.job(result["job_id"]) or {}
        try:
            config = ServerConfig.from_json(job.get("config", "{}"))
            workers = [str(worker) for worker in result["workers"]]
            params = params_for(
                config, cycle_id, sorted(workers), int(job.get("model_size", 0))
            )
            self.rounds.open(params, float(result["length"]))
        except (SecAggError, ConfigError) as exc:
            self._end(cycle_id, FAILED, 0, str(exc))
            return
        logger.info(
            "[CycleManager.Secure] run opened cycle=%s workers=%d threshold=%d",
            cycle_id,
            len(params.participants),
            params.threshold,
        )

    # --- workers' messages -------------------------------------------------

    def _cycle_of(self, request_key: str, worker_id: str) -> str:
        held = self.live.assignment(request_key) if request_key else None
        if held is None:
            raise NotFound("this request key was never issued or has expired")
        if held["worker_id"] != worker_id:
            raise InvalidArgument("this request key was issued to another worker")
        return held["cycle_id"]

    def post(
        self, request_key: str, worker_id: str, round_name: str, payload: bytes
    ) -> bool:
        """Store a worker's message for a round; True when it completed the round."""
        round_ = round_named(round_name)
        cycle_id = self._cycle_of(request_key, worker_id)
        result = self.rounds.post(cycle_id, round_, worker_id, payload)
        if result.complete and round_ is Round.UNMASK:
            self.settle(cycle_id)
        return result.complete

    def fetch(self, request_key: str, worker_id: str, round_name: str) -> Fetched:
        """The setup, or the grid's answer to a closed round, for one worker."""
        cycle_id = self._cycle_of(request_key, worker_id)
        try:
            current, _ = self.rounds.state(cycle_id)
        except NotFound:
            cycle = self.live.cycle(cycle_id) or {}
            if cycle.get("state") != "open":
                raise Conflict(
                    f"cycle {cycle_id} has ended ({cycle.get('state', 'gone')}): "
                    f"{cycle.get('close_reason', '')}"
                ) from None
            return Fetched(ready=False, current_round="admission")
        deadline = 0.0
        if current in Round.__members__:
            deadline = self.rounds.deadline(cycle_id, Round[current])
        where = current.lower()
        if round_name == SETUP:
            params = self.rounds.params(cycle_id)
            if worker_id not in params.participants:
                raise SecAggError(
                    f"worker {worker_id!r} was admitted after the run of cycle "
                    f"{cycle_id} started"
                )
            payload = params.to_setup().SerializeToString()
            return Fetched(True, payload, where, deadline)
        answer = self.rounds.fetch(cycle_id, round_named(round_name), worker_id)
        if answer is None:
            return Fetched(False, b"", where, deadline)
        return Fetched(True, answer, where, deadline)

    # --- timers and ends ---------------------------------------------------

    def tick(self) -> int:
        """Start due runs, close due rounds and end finished runs; returns a count."""
        touched = 0
        for cycle_id in self.live.due("sa_admission", 0.0):
            self.start(cycle_id)
            touched += 1
        touched += len(self.rounds.close_due())
        for cycle_id in self.live.due("sa_running", -1e12, limit=1000):
            touched += int(self.settle(cycle_id))
        return touched

    def settle(self, cycle_id: str) -> bool:
        """End the cycle if its run is done or failed; True when it ended now."""
        try:
            current, reason = self.rounds.state(cycle_id)
        except NotFound:
            return False
        if current == DONE:
            inputs = len(self.rounds.survivors(cycle_id))
            return self._end(cycle_id, DONE, inputs, "")
        if current == FAILED:
            return self._end(cycle_id, FAILED, 0, reason)
        return False

    def _end(self, cycle_id: str, outcome: str, inputs: int, reason: str) -> bool:
        result = self.live.end_secure(cycle_id, outcome, inputs, reason, new_cycle_id())
        kind = str(result["outcome"])
        if kind == "closing":
            self.closer.after_close(cycle_id, resend=False)
        elif kind == "failed":
            self.closer.record_end(cycle_id, result["job_id"], str(result["opened"]))
            self.rounds.forget(cycle_id)
        return kind != "none"

    def forget(self, cycle_id: str) -> None:
        """Drop a run's messages once its cycle ended for good."""
        self.rounds.forget(cycle_id)
