"""A single masked input is statistically indistinguishable from uniform."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from fedgrid.secagg import SecAggParams, SecAggServer, SecAggWorker

MakeParams = Callable[..., SecAggParams]

# Chi-square with 255 degrees of freedom: mean 255, deviation ~22.6. A bound
# seven deviations out is never crossed by uniform data in practice and is
# crossed by orders of magnitude by anything structured.
CHI_SQUARE_BOUND = 255 + 7 * 22.6


def _chi_square(words: NDArray[np.uint32], shift: int) -> float:
    counts = np.bincount(((words >> np.uint32(shift)) & np.uint32(0xFF)), minlength=256)
    expected = words.size / 256
    return float(((counts - expected) ** 2 / expected).sum())


def _masked_words(
    params: SecAggParams, values: NDArray[np.float64]
) -> NDArray[np.uint32]:
    server = SecAggServer(params)
    workers = {w: SecAggWorker(w, params) for w in params.participants}
    for worker in workers.values():
        server.receive_keys(worker.advertise())
    for name, roster in server.close_advertise().items():
        server.receive_shares(workers[name].share_keys(roster))
    bundles = server.close_shares()
    first = params.participants[0]
    message = workers[first].masked_input(bundles[first], values, 1)
    return np.frombuffer(message.values, dtype="<u4")


@pytest.mark.parametrize("shift", [0, 8, 16, 24])
def test_one_masked_input_is_indistinguishable_from_uniform(
    make_params: MakeParams, shift: int
) -> None:
    params = make_params(8, 5, 6, length=200_000)
    # The most structured input there is: the same value everywhere.
    constant = np.full(params.vector_length, 0.25)

    words = _masked_words(params, constant)
    plain = params.quantizer.encode(constant, 1)

    assert _chi_square(words, shift) < CHI_SQUARE_BOUND
    assert _chi_square(plain, shift) > 100 * CHI_SQUARE_BOUND
    # Neighbouring words are uncorrelated as well.
    pairs = words[:-1].astype(np.float64), words[1:].astype(np.float64)
    assert abs(np.corrcoef(*pairs)[0, 1]) < 7 / np.sqrt(words.size)
