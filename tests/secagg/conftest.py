"""Fixtures for the secure aggregation tests: parameters, inputs, expected sums."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pytest
from numpy.typing import NDArray

from fedgrid.secagg import SecAggParams

Inputs = dict[str, tuple[NDArray[np.float64], int]]


def worker_ids(count: int) -> list[str]:
    return [f"worker-{i:03d}" for i in range(count)]


def spread(order: tuple[str, ...], count: int) -> list[str]:
    """Up to `count` ring places, three in every ten: no share group of eleven
    consecutive places loses more than four."""
    places = [p for p in range(len(order)) if p % 10 in (0, 3, 6)]
    return [order[p] for p in places[:count]]


def expected_total(
    params: SecAggParams, inputs: Inputs, members: Iterable[str]
) -> NDArray[np.uint64]:
    """The sum of the members' deterministic encodings, modulo 2^bits."""
    quantizer = params.quantizer
    total = np.zeros(params.words, dtype=np.uint64)
    for member in members:
        values, weight = inputs[member]
        total += quantizer.encode(values, weight).astype(np.uint64)
    return total & np.uint64(quantizer.modulus_mask)


@pytest.fixture
def make_params() -> Callable[..., SecAggParams]:
    def make(
        count: int,
        threshold: int,
        neighbours: int,
        length: int = 8,
        **options: object,
    ) -> SecAggParams:
        return SecAggParams.create(
            cycle_id="cycle-test",
            participants=worker_ids(count),
            threshold=threshold,
            neighbours=neighbours,
            vector_length=length,
            **options,  # type: ignore[arg-type]
        )

    return make


@pytest.fixture
def make_inputs() -> Callable[..., Inputs]:
    def make(params: SecAggParams, seed: int = 0) -> Inputs:
        rng = np.random.default_rng(seed)
        weight_cap = params.quantizer.max_weight
        return {
            worker: (
                rng.uniform(-1.5, 1.5, params.vector_length),
                int(rng.integers(1, weight_cap + 1)),
            )
            for worker in params.participants
        }

    return make
