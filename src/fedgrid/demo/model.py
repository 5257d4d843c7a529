"""The demo's model and its accuracy on held-out digits."""

from __future__ import annotations

import torch
from torch import nn

from fedgrid.demo.data import CLASSES, FEATURES
from fedgrid.plans.examples import DigitsMLP as ExampleMLP

HIDDEN = 64


class DigitsMLP(ExampleMLP):
    """The demo's model: a two-layer perceptron over the 64 pixels of a digit."""

    def __init__(self) -> None:
        super().__init__(FEATURES, HIDDEN, CLASSES)


def accuracy(model: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of examples whose most likely class is the label."""
    with torch.no_grad():
        predicted = model(features).argmax(dim=1)
    return float((predicted == labels).float().mean())
