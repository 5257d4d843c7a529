"""Runs a whole secure aggregation in one process, with chosen dropouts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

import numpy as np
from google.protobuf.message import DecodeError, Message
from numpy.typing import NDArray

from fedgrid.secagg.errors import MalformedMessage, SecAggError
from fedgrid.secagg.params import SecAggParams
from fedgrid.secagg.server import SecAggResult, SecAggServer
from fedgrid.secagg.worker import SecAggWorker

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)


class Round(IntEnum):
    """The rounds in order; a worker dropping at a round sends nothing from it."""

    ADVERTISE = 1
    SHARE_KEYS = 2
    MASKED_INPUT = 3
    UNMASK = 4


# Rewrites (or suppresses, by returning None) a worker's outgoing message:
# how tests play a faulty or malicious worker.
Tamper = Callable[[str, Round, Message], Message | None]


@dataclass(frozen=True)
class Outcome:
    """The unmasked result, the weighted mean, and the per-worker refusals."""

    result: SecAggResult
    mean: NDArray[np.float64]
    weighted_sum: NDArray[np.float64]
    total_weight: int
    refused: dict[str, str]


def _wire(message: M) -> M:
    # Every message crosses a serialization boundary, as it would over a network.
    copy = type(message)()
    try:
        copy.ParseFromString(message.SerializeToString())
    except DecodeError as exc:
        raise MalformedMessage(f"a {type(message).__name__} does not parse") from exc
    return copy


def run_secagg(
    params: SecAggParams,
    inputs: Mapping[str, tuple[NDArray[np.floating], int]],
    dropouts: Mapping[str, Round] | None = None,
    tamper: Tamper | None = None,
    rng: np.random.Generator | None = None,
) -> Outcome:
    """Run all four rounds for the given workers' (values, weight) inputs.

    A worker missing from `inputs` never answers. Raises TooFewSurvivors when
    too few workers are left in some round; the message names the round.
    """
    dropouts = dict(dropouts or {})
    server = SecAggServer(params)
    workers = {w: SecAggWorker(w, params) for w in params.participants if w in inputs}
    refused: dict[str, str] = {}

    def active(worker: str, round_: Round) -> bool:
        return (
            worker in workers
            and worker not in refused
            and (worker not in dropouts or dropouts[worker] > round_)
        )

    def deliver(
        worker: str, round_: Round, message: Message, receive: Callable[[Any], None]
    ) -> None:
        outgoing = tamper(worker, round_, message) if tamper else message
        if outgoing is None:
            return
        try:
            receive(_wire(outgoing))
        except MalformedMessage as exc:
            refused[worker] = str(exc)

    def step(worker: str, call: Callable[..., M], *args: Any) -> M | None:
        try:
            return call(*args)
        except SecAggError as exc:
            refused[worker] = str(exc)
            return None

    for worker in workers:
        if active(worker, Round.ADVERTISE):
            keys = workers[worker].advertise()
            deliver(worker, Round.ADVERTISE, keys, server.receive_keys)
    rosters = server.close_advertise()

    for worker, roster in rosters.items():
        if active(worker, Round.SHARE_KEYS):
            shares = step(worker, workers[worker].share_keys, _wire(roster))
            if shares is not None:
                deliver(worker, Round.SHARE_KEYS, shares, server.receive_shares)
    bundles = server.close_shares()

    for worker, bundle in bundles.items():
        if active(worker, Round.MASKED_INPUT):
            values, weight = inputs[worker]
            masked = step(
                worker, workers[worker].masked_input, _wire(bundle), values, weight, rng
            )
            if masked is not None:
                deliver(worker, Round.MASKED_INPUT, masked, server.receive_masked_input)
    request = server.close_masked_input()

    for worker in request.survivors:
        if active(worker, Round.UNMASK):
            revealed = step(worker, workers[worker].unmask, _wire(request))
            if revealed is not None:
                deliver(worker, Round.UNMASK, revealed, server.receive_unmask)
    result = server.close_unmask()

    weighted_sum, total_weight = params.quantizer.decode_sum(result.total)
    mean = weighted_sum / total_weight if total_weight > 0 else weighted_sum * 0.0
    return Outcome(result, mean, weighted_sum, total_weight, refused)
