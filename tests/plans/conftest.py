"""Fixtures for plan tests: the demo models and their traced training plans."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from fedgrid.plans import Plan, trace_training_plan
from fedgrid.plans.examples import DigitsMLP, SmallCNN, sgd_training_step

BATCH_SIZES = (1, 7, 64)


@dataclass
class Case:
    """A model, its example shape and the plan traced once for it."""

    name: str
    model: nn.Module
    feature_shape: tuple[int, ...]
    plan: Plan

    def params(self) -> dict[str, torch.Tensor]:
        return {key: value.detach() for key, value in self.model.named_parameters()}

    def batch(self, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        data = torch.randn(size, *self.feature_shape, generator=generator)
        target = torch.randint(0, 10, (size,), generator=generator)
        return data, target


def _case(name: str, model: nn.Module, feature_shape: tuple[int, ...]) -> Case:
    torch.manual_seed(0)
    example = {
        "data": torch.randn(5, *feature_shape),
        "target": torch.randint(0, 10, (5,)),
        "lr": torch.tensor(0.1),
    }
    plan = trace_training_plan(sgd_training_step, model, example, name=name)
    return Case(name, model, feature_shape, plan)


@pytest.fixture(scope="package")
def mlp_case() -> Case:
    torch.manual_seed(1)
    return _case("mlp_training", DigitsMLP(), (64,))


@pytest.fixture(scope="package")
def cnn_case() -> Case:
    torch.manual_seed(2)
    return _case("cnn_training", SmallCNN(), (1, 8, 8))


@pytest.fixture(params=["mlp", "cnn"])
def case(request: pytest.FixtureRequest, mlp_case: Case, cnn_case: Case) -> Case:
    return mlp_case if request.param == "mlp" else cnn_case
