"""Clipping, rounding and the overflow bound of the fixed-point encoding."""

from __future__ import annotations

import numpy as np
import pytest

from fedgrid.errors import ConfigError, InvalidArgument
from fedgrid.secagg import Quantizer


def test_encode_clips_weights_and_decodes_the_sum() -> None:
    quantizer = Quantizer(bits=32, clipping_range=2.0, max_weight=10, max_workers=3)
    values = np.array([-5.0, -1.0, 0.0, 0.5, 5.0])

    words = [quantizer.encode(values, w) for w in (1, 4, 99)]
    total = sum(w.astype(np.uint64) for w in words) & np.uint64(quantizer.modulus_mask)
    weighted, weight = quantizer.decode_sum(total.astype(np.uint32))

    assert weight == 1 + 4 + 10
    clipped = np.array([-2.0, -1.0, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(weighted, clipped * 15, atol=3 / quantizer.scale)
    np.testing.assert_allclose(
        quantizer.mean(total.astype(np.uint32)), clipped, atol=1e-6
    )


def test_stochastic_rounding_is_unbiased() -> None:
    quantizer = Quantizer(bits=16, clipping_range=1.0, max_weight=1, max_workers=2)
    step = 1 / quantizer.scale
    value = np.full(200_000, 0.3 * step)  # a third of one step
    rng = np.random.default_rng(7)

    words = quantizer.encode(value, 1, rng)
    weighted, _ = quantizer.decode_sum(words)

    assert set(np.unique(words[:-1]).tolist()) == {0, 1}
    assert weighted.mean() == pytest.approx(0.3 * step, rel=0.02)


@pytest.mark.parametrize("bits", [24, 32, 48, 64])
def test_largest_admitted_sum_does_not_wrap(bits: int) -> None:
    quantizer = Quantizer(bits=bits, clipping_range=3.0, max_weight=7, max_workers=500)
    top = quantizer.encode(np.array([10.0, -10.0]), 7).astype(np.uint64)

    total = np.zeros(3, dtype=np.uint64)
    for _ in range(500):
        total = (total + top) & np.uint64(quantizer.modulus_mask)
    weighted, weight = quantizer.decode_sum(total.astype(quantizer.dtype))

    assert weight == 3500
    assert weighted[0] == pytest.approx(500 * 7 * 3.0, rel=1e-3)
    assert weighted[1] == pytest.approx(-500 * 7 * 3.0, rel=1e-3)
    assert quantizer.bound * 500 < 2 ** (bits - 1)


def test_too_few_bits_for_the_workers_is_refused() -> None:
    with pytest.raises(ConfigError, match="raise bits or lower max_weight"):
        Quantizer(bits=20, clipping_range=1.0, max_weight=1000, max_workers=500)


def test_bad_inputs_are_refused() -> None:
    quantizer = Quantizer(bits=32, clipping_range=1.0, max_weight=5, max_workers=4)

    with pytest.raises(InvalidArgument, match="NaN"):
        quantizer.encode(np.array([np.nan]), 1)
    with pytest.raises(InvalidArgument, match="weight must be >= 0"):
        quantizer.encode(np.array([0.0]), -1)
