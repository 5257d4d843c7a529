"""The demo's model and training step, in plain PyTorch."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from fedgrid.demo.data import CLASSES, FEATURES

HIDDEN = 64


class DigitsMLP(nn.Module):
    """A two-layer perceptron over the 64 pixels of an 8x8 digit."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(FEATURES, HIDDEN)
        self.output = nn.Linear(HIDDEN, CLASSES)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.output(functional.relu(self.hidden(features)))
        return logits


def accuracy(model: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of examples whose most likely class is the label."""
    with torch.no_grad():
        predicted = model(features).argmax(dim=1)
    return float((predicted == labels).float().mean())
