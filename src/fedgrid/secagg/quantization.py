"""Clipping and fixed-point encoding of weighted inputs modulo 2^bits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fedgrid.errors import ConfigError, InvalidArgument

# The weakest resolution accepted: a worker of weight 1 sees its clipping
# range cut into at least this many steps either side of zero.
MIN_LEVELS = 256
MIN_BITS = 16
MAX_BITS = 64


def word_dtype(bits: int) -> np.dtype[np.unsignedinteger]:
    """The unsigned word that holds values modulo 2^bits."""
    return np.dtype("<u4") if bits <= 32 else np.dtype("<u8")


def check_capacity(
    bits: int, max_workers: int, max_weight: int, clipping_range: float
) -> None:
    """Refuse parameters whose sum could overflow or whose steps are too coarse."""
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ConfigError(f"bits must be in {MIN_BITS}..{MAX_BITS}, got {bits}")
    if max_workers < 1 or max_weight < 1:
        raise ConfigError("max_workers and max_weight must be >= 1")
    levels = ((1 << (bits - 1)) - 1) / (max_workers * max_weight)
    if levels < MIN_LEVELS:
        raise ConfigError(
            f"bits={bits} leaves {levels:.1f} fixed-point steps per clipping range "
            f"for {max_workers} workers of weight up to {max_weight}; at least "
            f"{MIN_LEVELS} are needed: raise bits or lower max_weight"
        )
    if not (math.isfinite(clipping_range) and clipping_range > 0):
        raise ConfigError(f"clipping_range must be > 0, got {clipping_range}")


@dataclass(frozen=True)
class Quantizer:
    """Maps a clipped, weighted float vector to words modulo 2^bits.

    A worker with weight w (its sample count, capped at max_weight) sends
    round(w * clip(x) * scale) for every parameter and w itself as one more
    element. The sum over workers then holds sum(w x) and sum(w), so the grid
    recovers the weighted mean and nothing about any single worker. scale is
    the largest that keeps max_workers * max_weight * clipping_range * scale
    below 2^(bits-1): no sum of admitted inputs can wrap around.
    """

    bits: int
    clipping_range: float
    max_weight: int
    max_workers: int

    def __post_init__(self) -> None:
        check_capacity(
            self.bits, self.max_workers, self.max_weight, self.clipping_range
        )

    @property
    def dtype(self) -> np.dtype[np.unsignedinteger]:
        return word_dtype(self.bits)

    @property
    def modulus_mask(self) -> int:
        return (1 << self.bits) - 1

    @property
    def scale(self) -> float:
        limit = (1 << (self.bits - 1)) - 1
        return limit / (self.max_workers * self.max_weight * self.clipping_range)

    @property
    def bound(self) -> int:
        """The largest magnitude one worker's encoded value can take."""
        # max_weight * clipping_range * scale is exactly this, without floats.
        return ((1 << (self.bits - 1)) - 1) // self.max_workers

    def clip_weight(self, weight: int) -> int:
        """A sample count as the weight used in the sum."""
        if isinstance(weight, bool) or not isinstance(weight, int | np.integer):
            raise InvalidArgument(f"weight must be a whole number, got {weight!r}")
        if weight < 0:
            raise InvalidArgument(f"weight must be >= 0, got {weight}")
        return min(int(weight), self.max_weight)

    def encode(
        self,
        values: NDArray[np.floating],
        weight: int,
        rng: np.random.Generator | None = None,
    ) -> NDArray[np.unsignedinteger]:
        """[round(w * clip(x) * scale)..., w] as words; stochastic when rng given."""
        if not np.all(np.isfinite(values)):
            raise InvalidArgument("the input holds NaN or infinite values")
        w = self.clip_weight(weight)
        limit = self.clipping_range
        clipped = np.clip(np.asarray(values, dtype=np.float64).ravel(), -limit, limit)
        scaled = clipped * (w * self.scale)
        if rng is None:
            rounded = np.rint(scaled)
        else:
            rounded = np.floor(scaled + rng.random(scaled.shape))
        # Above 2^53 floats are coarser than one step: clip in floats to a
        # value that converts safely, then exactly in integers.
        limit_f = float(self.bound)
        if limit_f > self.bound:
            limit_f = float(np.nextafter(limit_f, 0.0))
        fixed = np.clip(rounded, -limit_f, limit_f).astype(np.int64)
        np.clip(fixed, -self.bound, self.bound, out=fixed)
        words = np.empty(fixed.size + 1, dtype=self.dtype)
        words[:-1] = fixed.astype(np.uint64).astype(self.dtype)
        words &= self.dtype.type(self.modulus_mask)
        words[-1] = w
        return words

    def decode_sum(
        self, total: NDArray[np.unsignedinteger]
    ) -> tuple[NDArray[np.float64], int]:
        """The weighted sum sum(w * clip(x)) and the total weight sum(w)."""
        signed = total.astype(np.uint64).astype(np.int64)
        if self.bits < 64:
            signed = signed & self.modulus_mask
            signed[signed >= 1 << (self.bits - 1)] -= 1 << self.bits
        return signed[:-1].astype(np.float64) / self.scale, int(signed[-1])

    def mean(self, total: NDArray[np.unsignedinteger]) -> NDArray[np.float64]:
        """The weighted mean of the clipped inputs behind an unmasked sum."""
        weighted, weight = self.decode_sum(total)
        if weight <= 0:
            raise InvalidArgument("the surviving inputs carry no weight")
        return weighted / weight
