"""Gaussian noise from a cryptographically secure source, vectorized.

The standard source reads the operating system's CSPRNG (os.urandom), turns
each 64-bit word into a uniform double with 53 random bits and makes normal
draws with the Box-Muller transform. Seeded generators such as numpy's or
torch's are predictable from their state and must not make privacy noise;
SeededGaussian exists only so that tests can repeat a draw.

Floating-point Gaussians leak a little through their low bits (the known
weakness of textbook samplers); a discrete Gaussian would close that gap.
"""

from __future__ import annotations

import math
import os
from typing import Protocol

import numpy as np
import torch

_MANTISSA_BITS = 53
_SCALE = 2.0**-_MANTISSA_BITS
# Draws made per urandom call: bounds the temporary memory to a few MB.
_BLOCK = 1 << 18


class NoiseSource(Protocol):
    """Where standard normal draws come from."""

    def standard_normal(self, count: int) -> torch.Tensor:
        """`count` independent N(0, 1) draws as a 1-D float64 tensor."""
        ...


def _uniform_open(words: np.ndarray) -> np.ndarray:
    """Uniform doubles in (0, 1] from 64-bit words (53 bits kept)."""
    return ((words >> np.uint64(64 - _MANTISSA_BITS)) + 1).astype(np.float64) * _SCALE


def box_muller(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Two arrays of uniforms in (0, 1] into twice as many standard normals."""
    radius = np.sqrt(-2.0 * np.log(first))
    angle = (2.0 * math.pi) * second
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])


class SecureGaussian:
    """Standard normals from os.urandom through Box-Muller."""

    def standard_normal(self, count: int) -> torch.Tensor:
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        out = np.empty(count, dtype=np.float64)
        filled = 0
        while filled < count:
            pairs = min(_BLOCK, (count - filled + 1) // 2)
            words = np.frombuffer(os.urandom(16 * pairs), dtype=np.uint64)
            uniforms = _uniform_open(words)
            normals = box_muller(uniforms[:pairs], uniforms[pairs:])
            take = min(count - filled, normals.size)
            out[filled : filled + take] = normals[:take]
            filled += take
        return torch.from_numpy(out)


class SeededGaussian:
    """Repeatable standard normals for tests; never for a real job."""

    def __init__(self, seed: int) -> None:
        self._generator = torch.Generator().manual_seed(seed)

    def standard_normal(self, count: int) -> torch.Tensor:
        return torch.randn(count, generator=self._generator, dtype=torch.float64)
