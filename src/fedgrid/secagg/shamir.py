"""Shamir secret sharing over GF(2^31 - 1), vectorized with numpy."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from fedgrid.secagg.errors import MalformedMessage

# A Mersenne prime: products of two field elements fit in 62 bits, so numpy's
# uint64 arithmetic is exact. Secrets are cut into 16-bit limbs, each one a
# field element, and every limb is shared with the same evaluation points.
PRIME = 2**31 - 1
LIMB_BYTES = 2
SHARE_WORD = np.dtype("<u4")

Limbs = NDArray[np.uint64]


def secret_to_limbs(secret: bytes) -> Limbs:
    """The field elements (16-bit limbs) that represent a secret."""
    if len(secret) % LIMB_BYTES:
        raise ValueError("secret length must be a multiple of two bytes")
    return np.frombuffer(secret, dtype="<u2").astype(np.uint64)


def limbs_to_secret(limbs: Limbs) -> bytes | None:
    """The secret back from its limbs, or None when a limb is out of range."""
    if int(limbs.max(initial=0)) >= 1 << (8 * LIMB_BYTES):
        return None
    return limbs.astype("<u2").tobytes()


def _random_elements(shape: tuple[int, ...]) -> Limbs:
    # 64 random bits reduced modulo a 31-bit prime: the bias is below 2^-32.
    count = int(np.prod(shape))
    raw = np.frombuffer(os.urandom(8 * count), dtype="<u8")
    return (raw % np.uint64(PRIME)).reshape(shape)


def split(secrets: Limbs, points: Sequence[int], threshold: int) -> Limbs:
    """Shares of each secret row at each point: shape (secrets, points, limbs).

    Any `threshold` shares of one secret rebuild it; fewer reveal nothing.
    """
    if not 1 <= threshold <= len(points):
        raise ValueError(f"threshold {threshold} needs 1..{len(points)} points")
    if any(not 0 < x < PRIME for x in points) or len(set(points)) != len(points):
        raise ValueError("share points must be distinct, non-zero field elements")
    rows, width = secrets.shape
    coefficients = _random_elements((threshold - 1, rows, 1, width))
    xs = np.asarray(points, dtype=np.uint64).reshape(1, -1, 1)
    prime = np.uint64(PRIME)

    # Horner's rule, highest coefficient first, for every point at once.
    values = np.zeros((rows, len(points), width), dtype=np.uint64)
    for coefficient in coefficients[::-1]:
        values = (values + coefficient) % prime
        values = (values * xs) % prime
    return (values + secrets[:, None, :]) % prime


def lagrange_weights(points: Sequence[int], at: int = 0) -> list[int]:
    """Weights that evaluate, at `at`, the polynomial through the given points."""
    weights = []
    for k, xk in enumerate(points):
        numerator, denominator = 1, 1
        for m, xm in enumerate(points):
            if m != k:
                numerator = numerator * (at - xm) % PRIME
                denominator = denominator * (xk - xm) % PRIME
        weights.append(numerator * pow(denominator, -1, PRIME) % PRIME)
    return weights


def combine(points: Sequence[Sequence[int]], shares: Limbs) -> Limbs:
    """Rebuild many secrets at once.

    shares has shape (secrets, threshold, limbs); points[s] lists the share
    points of secret s in the same order. Returns shape (secrets, limbs).
    """
    weights = np.array([lagrange_weights(row) for row in points], dtype=np.uint64)
    prime = np.uint64(PRIME)
    terms = (shares * weights[:, :, None]) % prime
    total: Limbs = terms.sum(axis=1, dtype=np.uint64) % prime
    return total


def evaluate(points: Sequence[int], shares: Limbs, at: int) -> Limbs:
    """The shared polynomial at another point; shares has shape (len, limbs)."""
    weights = np.array(lagrange_weights(points, at), dtype=np.uint64)
    terms = (shares * weights[:, None]) % np.uint64(PRIME)
    total: Limbs = terms.sum(axis=0, dtype=np.uint64) % np.uint64(PRIME)
    return total


def encode_share(share: Limbs) -> bytes:
    """Wire form of one share: little-endian uint32 field elements."""
    return share.astype(SHARE_WORD).tobytes()


def decode_share(data: bytes, limbs: int) -> Limbs:
    """One share from its wire form, checked for length and range."""
    if len(data) != limbs * SHARE_WORD.itemsize:
        raise MalformedMessage(
            f"a share must be {limbs * SHARE_WORD.itemsize} bytes, got {len(data)}"
        )
    share = np.frombuffer(data, dtype=SHARE_WORD).astype(np.uint64)
    if int(share.max(initial=0)) >= PRIME:
        raise MalformedMessage("a share holds a value outside the field")
    return share
