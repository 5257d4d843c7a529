"""The grid's side of a run rebuilt from stored round messages, in any process.

SecAggServer keeps its state in memory; the grid's replicas keep only the
messages. Feeding the stored messages to a fresh server in a fixed order (by
worker id) gives every replica, and the aggregator, the same server state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError, Message

from fedgrid.secagg.driver import Round
from fedgrid.secagg.errors import MalformedMessage, SecAggError
from fedgrid.secagg.params import SecAggParams
from fedgrid.secagg.server import SecAggServer, UnmaskPlan
from fedgrid.secagg.unmasking import MaskJob
from fedgrid.v1 import secagg_pb2

logger = logging.getLogger(__name__)

# What a worker sends in each round.
INBOUND: dict[Round, type[Message]] = {
    Round.ADVERTISE: secagg_pb2.PublicKeys,
    Round.SHARE_KEYS: secagg_pb2.ShareKeys,
    Round.MASKED_INPUT: secagg_pb2.MaskedInput,
    Round.UNMASK: secagg_pb2.UnmaskShares,
}

Messages = Mapping[Round, Mapping[str, bytes]]


@dataclass
class Replayed:
    """A server brought to the end of a round, and what that round's close sent.

    outputs maps each worker to its serialized message for the next round
    (roster, share bundle or unmask request); refused names senders whose
    stored message could not be used.
    """

    server: SecAggServer
    outputs: dict[str, bytes] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


def parse(round_: Round, worker: str, payload: bytes) -> Message:
    """A worker's message for a round; it must parse and name its sender."""
    message = INBOUND[round_]()
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        raise MalformedMessage(
            f"the {round_.name.lower()} message does not parse"
        ) from exc
    named = str(message.worker_id)  # type: ignore[attr-defined]
    if named != worker:
        raise MalformedMessage(
            f"the {round_.name.lower()} message names worker {named!r}, not the sender"
        )
    return message


def replay(params: SecAggParams, messages: Messages, through: Round) -> Replayed:
    """Run the server over the stored messages up to and including `through`.

    Rounds after the last one closed are not closed: for `through` = UNMASK
    the server is left ready for plan_unmasking. Raises TooFewSurvivors as
    the live server would.
    """
    server = SecAggServer(params)
    done = Replayed(server)
    receivers = {
        Round.ADVERTISE: server.receive_keys,
        Round.SHARE_KEYS: server.receive_shares,
        Round.MASKED_INPUT: server.receive_masked_input,
        Round.UNMASK: server.receive_unmask,
    }
    for round_ in Round:
        if round_ > through:
            break
        for worker, payload in sorted(messages.get(round_, {}).items()):
            try:
                receive: Any = receivers[round_]
                receive(parse(round_, worker, payload))
            except MalformedMessage as exc:
                done.refused[worker] = str(exc)
            except SecAggError as exc:
                # A message for a worker the round no longer expects.
                done.refused[worker] = str(exc)
        done.outputs = _close(server, round_)
    return done


def _close(server: SecAggServer, round_: Round) -> dict[str, bytes]:
    if round_ is Round.ADVERTISE:
        rosters = server.close_advertise()
        return {w: m.SerializeToString() for w, m in rosters.items()}
    if round_ is Round.SHARE_KEYS:
        bundles = server.close_shares()
        return {w: m.SerializeToString() for w, m in bundles.items()}
    if round_ is Round.MASKED_INPUT:
        request = server.close_masked_input()
        payload = request.SerializeToString()
        return {w: payload for w in request.survivors}
    return {}


def plan_from_messages(params: SecAggParams, messages: Messages) -> UnmaskPlan:
    """The masked sum and its masks from a finished run's stored messages.

    Raises TooFewSurvivors when some secret cannot be rebuilt.
    """
    return replay(params, messages, Round.UNMASK).server.plan_unmasking()


def jobs_to_json(jobs: Sequence[MaskJob]) -> list[list[Any]]:
    """Mask jobs as JSON for a task queue: [hex key, sign] pairs."""
    return [[job.key.hex(), job.sign] for job in jobs]


def jobs_from_json(data: Sequence[Sequence[Any]]) -> list[MaskJob]:
    """Mask jobs back from jobs_to_json."""
    try:
        return [MaskJob(bytes.fromhex(str(key)), int(sign)) for key, sign in data]
    except (TypeError, ValueError) as exc:
        raise MalformedMessage(f"mask jobs do not parse: {exc}") from exc
