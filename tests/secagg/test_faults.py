"""Workers that send malformed or mismatched messages are left out alone."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from google.protobuf.message import Message

from fedgrid.secagg import (
    Round,
    SecAggError,
    SecAggParams,
    SecAggServer,
    SecAggWorker,
    run_secagg,
)
from fedgrid.secagg.shamir import PRIME
from fedgrid.v1 import secagg_pb2
from tests.secagg.conftest import Inputs, expected_total

MakeParams = Callable[..., SecAggParams]
MakeInputs = Callable[..., Inputs]
Change = Callable[[Message], Message]


def _tamper(bad: str, at: Round, change: Change) -> Callable[..., Message]:
    def tamper(worker: str, round_: Round, message: Message) -> Message:
        if worker == bad and round_ is at:
            copy = type(message)()
            copy.CopyFrom(message)
            return change(copy)
        return message

    return tamper


def _garble_one_share(message: Message) -> Message:
    assert isinstance(message, secagg_pb2.ShareKeys)
    sealed = bytearray(message.shares[0].ciphertext)
    sealed[-1] ^= 0x01
    message.shares[0].ciphertext = bytes(sealed)
    return message


def _swap_two_shares(message: Message) -> Message:
    # Each sealed share is valid, but addressed to the wrong neighbour.
    assert isinstance(message, secagg_pb2.ShareKeys)
    first, second = message.shares[0].ciphertext, message.shares[1].ciphertext
    message.shares[0].ciphertext, message.shares[1].ciphertext = second, first
    return message


def _drop_one_share(message: Message) -> Message:
    assert isinstance(message, secagg_pb2.ShareKeys)
    del message.shares[0]
    return message


def _truncate_input(message: Message) -> Message:
    assert isinstance(message, secagg_pb2.MaskedInput)
    message.values = message.values[:-4]
    return message


@pytest.mark.parametrize(
    ("at", "change", "reason"),
    [
        (Round.SHARE_KEYS, _garble_one_share, "could not use its shares"),
        (Round.SHARE_KEYS, _swap_two_shares, "could not use its shares"),
        (Round.SHARE_KEYS, _drop_one_share, "one per live neighbour"),
        (Round.MASKED_INPUT, _truncate_input, "the masked input is"),
    ],
)
def test_bad_sender_is_excluded_and_the_rest_sum_exactly(
    make_params: MakeParams,
    make_inputs: MakeInputs,
    at: Round,
    change: Change,
    reason: str,
) -> None:
    params = make_params(20, 7, 10, max_weight=10)
    inputs = make_inputs(params)
    bad = params.graph.order[5]

    outcome = run_secagg(params, inputs, tamper=_tamper(bad, at, change))

    assert reason in outcome.result.excluded[bad]
    honest = tuple(w for w in params.participants if w != bad)
    assert outcome.result.survivors == honest
    expected = expected_total(params, inputs, honest)
    np.testing.assert_array_equal(outcome.result.total.astype(np.uint64), expected)


def _wrong_revealed_shares(message: Message) -> Message:
    # Valid field elements, wrong values: only reconstruction can tell.
    assert isinstance(message, secagg_pb2.UnmaskShares)
    for item in (*message.seed_shares, *message.key_shares):
        words = np.frombuffer(item.share, dtype="<u4").astype(np.uint64)
        item.share = ((words + 12345) % PRIME).astype("<u4").tobytes()
    return message


def _short_revealed_share(message: Message) -> Message:
    assert isinstance(message, secagg_pb2.UnmaskShares)
    message.seed_shares[0].share = message.seed_shares[0].share[:10]
    return message


@pytest.mark.parametrize("change", [_wrong_revealed_shares, _short_revealed_share])
@pytest.mark.parametrize("dropout", [False, True])
def test_bad_revealed_shares_do_not_break_unmasking(
    make_params: MakeParams, make_inputs: MakeInputs, change: Change, dropout: bool
) -> None:
    params = make_params(20, 7, 10)
    inputs = make_inputs(params, seed=3)
    bad = params.graph.order[5]
    dropped = {params.graph.order[6]: Round.MASKED_INPUT} if dropout else {}

    outcome = run_secagg(params, inputs, dropped, _tamper(bad, Round.UNMASK, change))

    # The liar's input was sent before it lied: it stays in the sum.
    counted = tuple(w for w in params.participants if w not in dropped)
    assert outcome.result.survivors == counted
    expected = expected_total(params, inputs, counted)
    np.testing.assert_array_equal(outcome.result.total.astype(np.uint64), expected)


def test_worker_refuses_to_reveal_when_survivors_fall_below_threshold(
    make_params: MakeParams, make_inputs: MakeInputs
) -> None:
    params = make_params(8, 5, 6)
    inputs = make_inputs(params)
    server = SecAggServer(params)
    workers = {w: SecAggWorker(w, params) for w in params.participants}
    for worker in workers.values():
        server.receive_keys(worker.advertise())
    for name, roster in server.close_advertise().items():
        server.receive_shares(workers[name].share_keys(roster))
    for name, bundle in server.close_shares().items():
        values, weight = inputs[name]
        server.receive_masked_input(workers[name].masked_input(bundle, values, weight))
    first = params.participants[0]
    # A grid that claims only four inputs arrived, and that it wants key
    # shares of the rest: revealing would let it unmask someone.
    request = secagg_pb2.UnmaskRequest(
        survivors=list(params.participants[:4]), dropped=list(params.participants[4:])
    )

    with pytest.raises(SecAggError, match="below the threshold"):
        workers[first].unmask(request)
    assert server.close_masked_input().survivors == list(params.participants)
