"""The demo's models and plan functions: a digits MLP, a small CNN, SGD, FedAvg."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.func import functional_call, grad

State = dict[str, torch.Tensor]


class DigitsMLP(nn.Module):
    """sklearn digits: 64 pixel features, 32 hidden units, 10 classes."""

    def __init__(self, features: int = 64, hidden: int = 32, classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        hidden: torch.Tensor = F.relu(self.fc1(data))
        logits: torch.Tensor = self.fc2(hidden)
        return logits


class SmallCNN(nn.Module):
    """One 3x3 convolution with 2x2 max pooling, then a linear layer (1x8x8 in)."""

    def __init__(self, channels: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, kernel_size=3, padding=1)
        self.fc = nn.Linear(channels * 4 * 4, classes)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        features = F.max_pool2d(F.relu(self.conv(data)), 2)
        logits: torch.Tensor = self.fc(features.flatten(1))
        return logits


def sgd_training_step(
    model: nn.Module,
    params: State,
    data: torch.Tensor,
    target: torch.Tensor,
    lr: torch.Tensor,
) -> State:
    """One SGD step: loss, accuracy and every parameter minus lr times its grad."""

    def loss_of(current: State) -> tuple[torch.Tensor, torch.Tensor]:
        logits = functional_call(model, current, (data,))
        return F.cross_entropy(logits, target), logits

    grads, logits = grad(loss_of, has_aux=True)(params)
    loss = F.cross_entropy(logits, target)
    accuracy = (logits.argmax(dim=1) == target).float().mean()
    updated = {name: value - lr * grads[name] for name, value in params.items()}
    return {"loss": loss, "accuracy": accuracy, **updated}


def fedavg_iterative(avg: State, diff: State, n: torch.Tensor) -> State:
    """Running mean: after n diffs, avg is their plain average."""
    return {name: avg[name] + (diff[name] - avg[name]) / n for name in avg}


def fedavg_list(diffs: State) -> State:
    """Mean over stacked diffs (one row per worker)."""
    return {name: stacked.mean(dim=0) for name, stacked in diffs.items()}


def median_list(diffs: State) -> State:
    """Coordinate-wise median over stacked diffs, robust to a few outliers."""
    return {name: stacked.median(dim=0).values for name, stacked in diffs.items()}
