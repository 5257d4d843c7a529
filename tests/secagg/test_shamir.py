"""Shamir sharing over the prime field, and rebuilding with wrong shares."""

from __future__ import annotations

import hashlib
import itertools
import os

import numpy as np
import pytest

from fedgrid.secagg import MalformedMessage, shamir
from fedgrid.secagg.unmasking import rebuild


def test_any_threshold_shares_rebuild_and_fewer_do_not() -> None:
    secret = os.urandom(32)
    points = [2, 5, 9, 14, 20]
    shares = shamir.split(shamir.secret_to_limbs(secret)[None], points, 3)[0]

    for subset in itertools.combinations(range(5), 3):
        chosen = [points[i] for i in subset]
        rebuilt = shamir.combine([chosen], shares[list(subset)][None])[0]
        assert shamir.limbs_to_secret(rebuilt) == secret

    # Two true shares and a made-up third point land on another value.
    fake = np.stack([shares[0], shares[1], shares[2] ^ np.uint64(1)])
    rebuilt = shamir.combine([points[:3]], fake[None])[0]
    assert shamir.limbs_to_secret(rebuilt) != secret


def test_shares_of_two_secrets_are_independent() -> None:
    secrets = np.stack([shamir.secret_to_limbs(bytes(32))] * 2)
    shares = shamir.split(secrets, [1, 2, 3], 2)

    # The same secret shared twice gets different random polynomials.
    assert not np.array_equal(shares[0], shares[1])
    assert int(shares.max()) < shamir.PRIME


def test_decode_share_refuses_bad_length_and_out_of_field_values() -> None:
    good = shamir.encode_share(np.arange(16, dtype=np.uint64))
    outside = np.full(16, shamir.PRIME, dtype="<u4").tobytes()

    assert shamir.decode_share(good, 16).tolist() == list(range(16))
    with pytest.raises(MalformedMessage, match="must be 64 bytes"):
        shamir.decode_share(good[:-1], 16)
    with pytest.raises(MalformedMessage, match="outside the field"):
        shamir.decode_share(outside, 16)


def test_rebuild_skips_wrong_shares_and_names_their_points() -> None:
    secret = os.urandom(32)
    digest = hashlib.sha256(secret).digest()
    points = list(range(1, 11))
    shares = shamir.split(shamir.secret_to_limbs(secret)[None], points, 7)[0]
    held = {x: shares[i] for i, x in enumerate(points)}
    held[1] = (held[1] + np.uint64(5)) % np.uint64(shamir.PRIME)
    held[4] = (held[4] + np.uint64(9)) % np.uint64(shamir.PRIME)

    def check(owner: str, candidate: bytes) -> bool:
        return hashlib.sha256(candidate).digest() == digest

    found = rebuild({"a": held, "b": dict(list(held.items())[:6])}, 7, check)

    assert found["a"] is not None
    assert found["a"].secret == secret
    assert found["a"].wrong_points == (1, 4)
    assert found["b"] is None
