"""The demo job file: what `fedgrid push` reads to host the digits job.

A data scientist writes a file like this one: a model, a training step over
tensors, and the job's configs. `fedgrid push` traces the step into a plan
and uploads everything; the grid never runs this file.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.func import functional_call, grad

from fedgrid.demo.data import CLASSES, FEATURES
from fedgrid.demo.model import DigitsMLP
from fedgrid.job import JobSpec

WORKERS = 8
CYCLES = 8


def training_step(
    model: nn.Module,
    params: dict[str, torch.Tensor],
    features: torch.Tensor,
    labels: torch.Tensor,
    lr: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """One SGD step on a batch: loss, accuracy and the updated parameters."""

    def loss_of(current: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = functional_call(model, current, (features,))
        return nn.functional.cross_entropy(logits, labels)

    grads = grad(loss_of)(params)
    logits = functional_call(model, params, (features,))
    loss = nn.functional.cross_entropy(logits, labels)
    accuracy = (logits.argmax(dim=1) == labels).to(torch.float32).mean()
    updated = {name: params[name] - lr * grads[name] for name in params}
    return {"loss": loss, "accuracy": accuracy, **updated}


def make_job(version: str, workers: int = WORKERS, cycles: int = CYCLES) -> JobSpec:
    """The digits job; checkpoint 1 is a seeded random initialisation."""
    torch.manual_seed(0)
    return JobSpec(
        name="digits",
        version=version,
        model=DigitsMLP(),
        training_plan=training_step,
        example_inputs={
            "features": torch.zeros(16, FEATURES),
            "labels": torch.zeros(16, dtype=torch.int64).remainder(CLASSES),
            "lr": torch.tensor(0.1),
        },
        client_config={"lr": 0.1, "batch_size": 16, "epochs": 8},
        server_config={
            "max_workers": workers,
            "pool_selection": "iterate",
            "cycle_length": 120,
            "num_cycles": cycles,
            "min_diffs": max(1, workers * 3 // 4),
            "max_diffs": workers,
            "targets": ["python", "torchscript"],
            "averaging": {"method": "fedavg"},
        },
    )


# `fedgrid push` reads the module-level `job`; the demo passes a fresh version
# so that it can run again and again against the same grid.
job = make_job(
    os.environ.get("FEDGRID_DEMO_VERSION", "1.0.0"),
    workers=int(os.environ.get("FEDGRID_DEMO_WORKERS", WORKERS)),
    cycles=int(os.environ.get("FEDGRID_DEMO_CYCLES", CYCLES)),
)
