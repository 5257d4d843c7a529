"""A small job file as a data scientist writes one: an MLP on 8 features."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad

from fedgrid.job import JobSpec

FEATURES = 8
CLASSES = 3


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(FEATURES, 6)
        self.out = nn.Linear(6, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


def training_step(
    model: nn.Module,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    lr: torch.Tensor,
) -> dict[str, torch.Tensor]:
    def loss_of(p: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = functional_call(model, p, (x,))
        return nn.functional.cross_entropy(logits, y)

    grads = grad(loss_of)(params)
    logits = functional_call(model, params, (x,))
    loss = nn.functional.cross_entropy(logits, y)
    accuracy = (logits.argmax(dim=1) == y).to(torch.float32).mean()
    updated = {name: params[name] - lr * grads[name] for name in params}
    return {"loss": loss, "accuracy": accuracy, **updated}


def make_job(name: str = "tiny", version: str = "1.0.0", **server: Any) -> JobSpec:
    torch.manual_seed(0)
    server_config = {
        "max_workers": 2,
        "pool_selection": "iterate",
        "cycle_length": 60,
        "num_cycles": 2,
        "min_diffs": 1,
        "max_diffs": 2,
    }
    server_config.update(server)
    return JobSpec(
        name=name,
        version=version,
        model=TinyNet(),
        training_plan=training_step,
        example_inputs={
            "x": torch.randn(4, FEATURES),
            "y": torch.randint(0, CLASSES, (4,)),
            "lr": torch.tensor(0.1),
        },
        client_config={"lr": 0.1, "epochs": 1},
        server_config=server_config,
    )


def make_partition(
    seed: int, samples: int = 16, batch: int = 8
) -> list[dict[str, torch.Tensor]]:
    """A worker's local data, already batched."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, FEATURES, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return [
        {"x": x[start : start + batch], "y": y[start : start + batch]}
        for start in range(0, samples, batch)
    ]


job = make_job()
