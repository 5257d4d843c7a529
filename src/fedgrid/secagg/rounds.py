"""A cycle's secure aggregation rounds on the grid: messages in Redis, deadlines.

Each round takes one message per expected worker until it is complete or its
deadline passes; then exactly one replica closes it (an atomic script moves
the round to "closing"), replays the stored messages and publishes every
worker's message for the next round. Too few survivors fail the run with the
reason kept for the cycle's close.

Round deadlines follow the cycle: with L = cycle_length from the moment the
run opens, advertise keys ends at 0.15 L, share keys at 0.3 L, masked input
(the workers train first) at 0.85 L, and unmasking at L.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import redis

from fedgrid.errors import Conflict, NotFound, StorageError, Unavailable
from fedgrid.secagg.driver import Round
from fedgrid.secagg.errors import MalformedMessage, SecAggError
from fedgrid.secagg.params import SecAggParams
from fedgrid.secagg.replay import Messages, parse, replay
from fedgrid.v1 import secagg_pb2

logger = logging.getLogger(__name__)

ROUND_ENDS = {
    Round.ADVERTISE: 0.15,
    Round.SHARE_KEYS: 0.30,
    Round.MASKED_INPUT: 0.85,
    Round.UNMASK: 1.0,
}
DONE = "done"
FAILED = "failed"
CLOSING = "closing"
RETENTION_SECONDS = 7 * 24 * 3600

# ARGV: round key, messages key, expected key, round name, worker, payload.
_POST = """
local current = redis.call('GET', ARGV[1])
if current ~= ARGV[4] then return cjson.encode({status = 'closed'}) end
if redis.call('SISMEMBER', ARGV[3], ARGV[5]) == 0 then
  return cjson.encode({status = 'unexpected'})
end
if redis.call('HSETNX', ARGV[2], ARGV[5], ARGV[6]) == 0 then
  return cjson.encode({status = 'duplicate'})
end
local got = redis.call('HLEN', ARGV[2])
local wanted = redis.call('SCARD', ARGV[3])
return cjson.encode({status = 'stored', complete = got >= wanted})
"""

# ARGV: round key, round name. Exactly one caller moves a round to closing.
_CLAIM = """
if redis.call('GET', ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('SET', ARGV[1], 'closing')
return 1
"""


@dataclass(frozen=True)
class PostResult:
    """Whether a message was stored, and whether it completed its round."""

    status: str
    complete: bool = False


class SecAggRounds:
    """The live rounds of every secure aggregation run under one Redis prefix."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.prefix = prefix
        self._client = redis.Redis.from_url(redis_url, socket_timeout=10)
        self._post = self._client.register_script(_POST)
        self._claim = self._client.register_script(_CLAIM)

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise Unavailable(f"Redis is unreachable while {what}: {exc}") from exc
        except redis.RedisError as exc:
            raise StorageError(f"Redis failed while {what}: {exc}") from exc

    def _key(self, cycle_id: str, *parts: str) -> str:
        return ":".join((f"{self.prefix}sa", cycle_id, *parts))

    # --- opening and state ----------------------------------------------

    def open(self, params: SecAggParams, cycle_length: float) -> None:
        """Start a run: its setup, round deadlines and the invited workers."""
        cycle_id = params.cycle_id
        now = time.time()
        deadlines = {r.name: now + f * cycle_length for r, f in ROUND_ENDS.items()}
        with self._translated("opening a secure aggregation run"):
            pipe = self._client.pipeline(transaction=True)
            pipe.set(
                self._key(cycle_id, "setup"), params.to_setup().SerializeToString()
            )
            pipe.set(self._key(cycle_id, "deadlines"), json.dumps(deadlines))
            pipe.sadd(
                self._key(cycle_id, "expected", Round.ADVERTISE.name),
                *params.participants,
            )
            pipe.set(self._key(cycle_id, "round"), Round.ADVERTISE.name)
            pipe.zadd(self._key("runs"), {cycle_id: deadlines[Round.ADVERTISE.name]})
            for suffix in ("setup", "deadlines", "round"):
                pipe.expire(self._key(cycle_id, suffix), RETENTION_SECONDS)
            pipe.execute()
        logger.info(
            "[SecAggRounds.open] cycle=%s participants=%d threshold=%d",
            cycle_id,
            len(params.participants),
            params.threshold,
        )

    def params(self, cycle_id: str) -> SecAggParams:
        """The run's public parameters."""
        with self._translated("reading a run's setup"):
            raw = self._client.get(self._key(cycle_id, "setup"))
        if raw is None:
            raise NotFound(f"cycle {cycle_id!r} runs no secure aggregation")
        setup = secagg_pb2.SecAggSetup()
        setup.ParseFromString(bytes(raw))  # type: ignore[arg-type]
        return SecAggParams.from_setup(setup)

    def state(self, cycle_id: str) -> tuple[str, str]:
        """The current round (or done / failed / closing) and a failure reason."""
        with self._translated("reading a run's round"):
            current, reason = self._client.mget(
                self._key(cycle_id, "round"), self._key(cycle_id, "reason")
            )
        if current is None:
            raise NotFound(f"cycle {cycle_id!r} runs no secure aggregation")
        found = cast("tuple[bytes, bytes | None]", (current, reason))
        return found[0].decode(), (found[1] or b"").decode()

    def deadline(self, cycle_id: str, round_: Round) -> float:
        """When a round closes at the latest (unix seconds)."""
        with self._translated("reading deadlines"):
            raw = self._client.get(self._key(cycle_id, "deadlines"))
        if raw is None:
            raise NotFound(f"cycle {cycle_id!r} runs no secure aggregation")
        return float(json.loads(bytes(raw))[round_.name])  # type: ignore[arg-type]

    def messages(self, cycle_id: str, through: Round) -> dict[Round, dict[str, bytes]]:
        """Every stored worker message of the rounds up to `through`."""
        found: dict[Round, dict[str, bytes]] = {}
        with self._translated("reading round messages"):
            for round_ in Round:
                if round_ > through:
                    break
                key = self._key(cycle_id, "msg", round_.name)
                raw = cast("dict[bytes, bytes]", self._client.hgetall(key))
                found[round_] = {k.decode(): bytes(v) for k, v in raw.items()}
        return found

    # --- workers' messages ------------------------------------------------

    def post(
        self, cycle_id: str, round_: Round, worker: str, payload: bytes
    ) -> PostResult:
        """Store a worker's message for the open round; close it when complete."""
        parse(round_, worker, payload)
        with self._translated("storing a round message"):
            reply = self._post(
                keys=[],
                args=[
                    self._key(cycle_id, "round"),
                    self._key(cycle_id, "msg", round_.name),
                    self._key(cycle_id, "expected", round_.name),
                    round_.name,
                    worker,
                    payload,
                ],
            )
        result = json.loads(reply)
        status = str(result["status"])
        if status == "closed":
            raise Conflict(
                f"the {round_.name.lower()} round of cycle {cycle_id} is not open"
            )
        if status == "unexpected":
            raise MalformedMessage(
                f"worker {worker!r} is not expected in the {round_.name.lower()} round"
            )
        if status == "duplicate":
            raise MalformedMessage(
                f"worker {worker!r} already sent its {round_.name.lower()} message"
            )
        complete = bool(result.get("complete"))
        if complete:
            self.close(cycle_id, round_)
        return PostResult(status, complete)

    def fetch(self, cycle_id: str, round_: Round, worker: str) -> bytes | None:
        """The grid's message to a worker after `round_` closed; None if not yet.

        Raises SecAggError when the run failed or left the worker out.
        """
        current, reason = self.state(cycle_id)
        if current == FAILED:
            raise SecAggError(
                f"secure aggregation of cycle {cycle_id} failed: {reason}"
            )
        with self._translated("reading a round's answer"):
            # Both in one transaction: a round closing between two separate
            # reads would look published without this worker's answer.
            pipe = self._client.pipeline(transaction=True)
            pipe.hget(self._key(cycle_id, "out", round_.name), worker)
            pipe.exists(self._key(cycle_id, "out", round_.name, "at"))
            raw, published = pipe.execute()
        if raw is not None:
            return bytes(raw)  # type: ignore[arg-type]
        if published:
            raise SecAggError(
                f"worker {worker!r} is no longer in the run of cycle {cycle_id}"
            )
        return None

    def survivors(self, cycle_id: str) -> list[str]:
        """Workers whose masked input is in the sum (after masked input closed)."""
        with self._translated("reading a run's survivors"):
            raw = self._client.hvals(
                self._key(cycle_id, "out", Round.MASKED_INPUT.name)
            )
        if not raw:
            return []
        request = secagg_pb2.UnmaskRequest()
        request.ParseFromString(bytes(raw[0]))  # type: ignore[arg-type]
        return list(request.survivors)

    # --- closing rounds ---------------------------------------------------

    def close(self, cycle_id: str, round_: Round) -> bool:
        """Close a round (once across replicas); True when this call closed it."""
        with self._translated("claiming a round"):
            won = self._claim(keys=[], args=[self._key(cycle_id, "round"), round_.name])
        if not won:
            return False
        params = self.params(cycle_id)
        stored: Messages = self.messages(cycle_id, round_)
        try:
            replayed = replay(params, stored, round_)
        except SecAggError as exc:
            self._fail(cycle_id, str(exc))
            return True
        following = DONE if round_ is Round.UNMASK else Round(round_ + 1).name
        with self._translated("publishing a round's answers"):
            pipe = self._client.pipeline(transaction=True)
            out = self._key(cycle_id, "out", round_.name)
            if replayed.outputs:
                pipe.hset(out, mapping=replayed.outputs)  # type: ignore[arg-type]
            pipe.set(self._key(cycle_id, "out", round_.name, "at"), str(time.time()))
            if following != DONE:
                expected = self._key(cycle_id, "expected", following)
                if replayed.outputs:
                    pipe.sadd(expected, *replayed.outputs)
                deadline = self.deadline(cycle_id, Round[following])
                pipe.zadd(self._key("runs"), {cycle_id: deadline})
            else:
                pipe.zrem(self._key("runs"), cycle_id)
            pipe.set(self._key(cycle_id, "round"), following)
            pipe.execute()
        logger.info(
            "[SecAggRounds.close] cycle=%s round=%s next=%s refused=%d",
            cycle_id,
            round_.name.lower(),
            following.lower(),
            len(replayed.refused),
        )
        return True

    def _fail(self, cycle_id: str, reason: str) -> None:
        with self._translated("failing a run"):
            pipe = self._client.pipeline(transaction=True)
            pipe.set(self._key(cycle_id, "reason"), reason)
            pipe.set(self._key(cycle_id, "round"), FAILED)
            pipe.zrem(self._key("runs"), cycle_id)
            pipe.execute()
        logger.warning(
            "[SecAggRounds.close] cycle=%s failed reason=%s", cycle_id, reason
        )

    def close_due(self, now: float | None = None) -> list[str]:
        """Close every round whose deadline passed; returns the cycles touched."""
        cutoff = time.time() if now is None else now
        with self._translated("scanning round deadlines"):
            due = self._client.zrangebyscore(self._key("runs"), "-inf", cutoff)
        touched = []
        for raw in due:
            cycle_id = bytes(raw).decode()  # type: ignore[arg-type]
            current, _ = self.state(cycle_id)
            if current in Round.__members__ and self.close(cycle_id, Round[current]):
                touched.append(cycle_id)
        return touched

    def forget(self, cycle_id: str) -> None:
        """Delete a finished run's keys."""
        with self._translated("deleting a run"):
            keys = list(self._client.scan_iter(match=self._key(cycle_id, "*")))
            if keys:
                self._client.delete(*keys)
            self._client.zrem(self._key("runs"), cycle_id)

    def close_connection(self) -> None:
        """Release the connection pool."""
        self._client.close()
