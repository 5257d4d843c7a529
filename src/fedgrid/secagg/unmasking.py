"""Rebuilding secrets from revealed shares and removing masks from a sum."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fedgrid.secagg import crypto, shamir

logger = logging.getLogger(__name__)

# How many share subsets are tried for one secret when some revealed shares
# are wrong; with k = 10 neighbours and threshold 7 every subset fits.
MAX_SUBSETS = 4096


@dataclass(frozen=True)
class MaskJob:
    """One mask to regenerate: its PRG key and +1 / -1 for add / subtract."""

    key: bytes
    sign: int


@dataclass(frozen=True)
class Rebuilt:
    """A secret rebuilt from shares, and the revealers whose shares disagreed."""

    secret: bytes
    wrong_points: tuple[int, ...]


Check = Callable[[str, bytes], bool]


def rebuild(
    shares: Mapping[str, Mapping[int, NDArray[np.uint64]]],
    threshold: int,
    check: Check,
) -> dict[str, Rebuilt | None]:
    """Rebuild each owner's secret from its shares (point -> limbs).

    All owners are first rebuilt together from their lowest `threshold`
    points; a result that fails `check` is retried over other subsets. An
    owner with too few shares, or no subset that passes, maps to None.
    """
    owners = sorted(o for o, held in shares.items() if len(held) >= threshold)
    out: dict[str, Rebuilt | None] = {o: None for o in shares}
    if owners:
        points = [sorted(shares[o])[:threshold] for o in owners]
        stacked = np.stack(
            [
                np.stack([shares[o][x] for x in row])
                for o, row in zip(owners, points, strict=True)
            ]
        )
        for owner, limbs in zip(owners, shamir.combine(points, stacked), strict=True):
            secret = shamir.limbs_to_secret(limbs)
            if secret is not None and check(owner, secret):
                out[owner] = Rebuilt(secret, ())
            else:
                out[owner] = _search(owner, shares[owner], threshold, check)
    return out


def _search(
    owner: str,
    held: Mapping[int, NDArray[np.uint64]],
    threshold: int,
    check: Check,
) -> Rebuilt | None:
    points = sorted(held)
    subsets = itertools.combinations(points, threshold)
    for subset in itertools.islice(subsets, MAX_SUBSETS):
        shares = np.stack([held[x] for x in subset])[None]
        secret = shamir.limbs_to_secret(shamir.combine([list(subset)], shares)[0])
        if secret is None or not check(owner, secret):
            continue
        wrong = tuple(
            x
            for x in points
            if x not in subset
            and not np.array_equal(shamir.evaluate(list(subset), shares[0], x), held[x])
        )
        logger.warning(
            "[SecAggServer.unmask] owner=%s wrong_shares=%d", owner, len(wrong)
        )
        return Rebuilt(secret, wrong)
    return None


def mask_total(
    jobs: Sequence[MaskJob], words: int, bits: int
) -> NDArray[np.unsignedinteger]:
    """The signed sum of the jobs' masks modulo 2^bits.

    Jobs can be split across tasks: the totals of the parts add up (modulo
    2^bits) to the total of the whole.
    """
    dtype = np.dtype("<u4") if bits <= 32 else np.dtype("<u8")
    total = np.zeros(words, dtype=dtype)
    for job in jobs:
        mask = crypto.keystream(job.key, words, dtype)
        if job.sign > 0:
            total += mask
        else:
            total -= mask
    total &= dtype.type((1 << bits) - 1)
    return total


def split_jobs(jobs: Sequence[MaskJob], parts: int) -> list[list[MaskJob]]:
    """Jobs dealt into at most `parts` lists of near-equal length."""
    parts = max(1, min(parts, len(jobs)))
    return [list(jobs[i::parts]) for i in range(parts)]


def add_words(
    a: NDArray[np.unsignedinteger], b: NDArray[np.unsignedinteger], bits: int
) -> NDArray[np.unsignedinteger]:
    """a + b modulo 2^bits."""
    total = a + b
    total &= total.dtype.type((1 << bits) - 1)
    return total
