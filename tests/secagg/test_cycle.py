"""A whole training cycle under secure aggregation, 30% dropping after sharing."""

from __future__ import annotations

import numpy as np
import torch

from fedgrid.secagg import Round, SecAggParams, run_secagg

WORKERS = 20
DROPPED = 6


def _local_diff(
    model: dict[str, torch.Tensor], seed: int
) -> tuple[dict[str, torch.Tensor], int]:
    # A worker fits y = 3x - 1 on its own noisy samples with a few SGD steps.
    generator = torch.Generator().manual_seed(seed)
    samples = 10 + seed % 7
    x = torch.rand(samples, 1, generator=generator)
    y = 3 * x - 1 + 0.01 * torch.randn(samples, 1, generator=generator)
    weight = model["weight"].clone().requires_grad_(True)
    bias = model["bias"].clone().requires_grad_(True)
    optimizer = torch.optim.SGD([weight, bias], lr=0.3)
    for _ in range(5):
        optimizer.zero_grad()
        loss = ((x @ weight.T + bias - y) ** 2).mean()
        loss.backward()
        optimizer.step()
    diff = {"weight": model["weight"] - weight.detach(), "bias": model["bias"] - bias}
    return {k: v.detach() for k, v in diff.items()}, samples


def _flat(state: dict[str, torch.Tensor]) -> np.ndarray:
    return torch.cat([state[k].flatten() for k in sorted(state)]).double().numpy()


def _loss(model: dict[str, torch.Tensor]) -> float:
    x = torch.linspace(0, 1, 50).reshape(-1, 1)
    prediction = x @ model["weight"].T + model["bias"]
    return float(((prediction - (3 * x - 1)) ** 2).mean())


def test_cycle_with_twenty_workers_and_thirty_percent_dropping() -> None:
    model = {"weight": torch.zeros(1, 1), "bias": torch.zeros(1)}
    ids = [f"phone-{i:02d}" for i in range(WORKERS)]
    params = SecAggParams.create(
        cycle_id="cycle-7",
        participants=ids,
        threshold=7,
        neighbours=10,
        vector_length=2,
        clipping_range=2.0,
        max_weight=50,
        max_workers=100,
    )
    reports = {w: _local_diff(model, i) for i, w in enumerate(ids)}
    inputs = {w: (_flat(diff), samples) for w, (diff, samples) in reports.items()}
    order = params.graph.order
    dropped = {order[p] for p in (0, 3, 6, 10, 13, 16)}
    assert len(dropped) == DROPPED

    outcome = run_secagg(params, inputs, {w: Round.MASKED_INPUT for w in dropped})

    survivors = [w for w in ids if w not in dropped]
    assert list(outcome.result.survivors) == survivors
    weight = sum(inputs[w][1] for w in survivors)
    plain_mean = sum(inputs[w][0] * inputs[w][1] for w in survivors) / weight
    assert outcome.total_weight == weight
    np.testing.assert_allclose(outcome.mean, plain_mean, atol=1e-6)

    # The new checkpoint is the current one minus the averaged diff.
    keys = sorted(model)
    mean = torch.from_numpy(outcome.mean).float()
    checkpoint = {
        "bias": model["bias"] - mean[0:1],
        "weight": model["weight"] - mean[1:2].reshape(1, 1),
    }
    assert keys == ["bias", "weight"]
    assert _loss(checkpoint) < 0.5 * _loss(model)
