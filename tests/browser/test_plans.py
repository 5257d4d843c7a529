"""The browser's plan interpreter against PyTorch, in headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad

from fedgrid.errors import PlanError
from fedgrid.plans import Plan, load_opset, trace_plan, trace_training_plan
from fedgrid.plans.examples import DigitsMLP, SmallCNN, sgd_training_step
from tests.browser.conftest import run_page, write_case

pytestmark = pytest.mark.slow
TOLERANCE = 1e-5


def _digits_case() -> tuple[Plan, dict[str, torch.Tensor]]:
    torch.manual_seed(3)
    model = DigitsMLP()
    batch = {
        "data": torch.randn(16, 64),
        "target": torch.randint(0, 10, (16,)),
        "lr": torch.tensor(0.1),
    }
    plan = trace_training_plan(sgd_training_step, model, batch)
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    return plan, {**params, **batch}


class NormNet(nn.Module):
    """Layer norm, GELU (tanh), sigmoid, tanh, leaky ReLU, and their backward ops."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(8)
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.norm(self.inp(x)), approximate="tanh")
        h = h * torch.sigmoid(h) + torch.tanh(h)
        out: torch.Tensor = self.out(F.leaky_relu(h, 0.1))
        return out


class ConvNet(nn.Module):
    """A strided, padded 3x3 convolution, then a linear layer (1x8x8 in)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=3, padding=1, stride=2)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(torch.relu(self.conv(x)).flatten(1))
        return out


def _conv_case() -> tuple[Plan, dict[str, torch.Tensor]]:
    torch.manual_seed(8)
    model = ConvNet()
    batch = {
        "data": torch.randn(6, 1, 8, 8),
        "target": torch.randint(0, 3, (6,)),
        "lr": torch.tensor(0.1),
    }
    plan = trace_training_plan(sgd_training_step, model, batch)
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    return plan, {**params, **batch}


def _regression_step(
    model: nn.Module,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    lr: torch.Tensor,
) -> dict[str, torch.Tensor]:
    def loss_of(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.mse_loss(functional_call(model, p, (x,)), y)

    grads = grad(loss_of)(params)
    return {
        "loss": loss_of(params),
        **{name: params[name] - lr * grads[name] for name in params},
    }


def _weighted_nll_step(
    model: nn.Module,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    lr: torch.Tensor,
) -> dict[str, torch.Tensor]:
    weight = torch.tensor([0.5, 2.0, 1.0])

    def loss_of(p: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = functional_call(model, p, (x,))
        logp = F.log_softmax(logits.t(), dim=0).t()  # over a non-last axis
        summed = F.nll_loss(logp, y, weight=weight, ignore_index=1, reduction="sum")
        return summed + F.nll_loss(logp, y, reduction="none").mean()

    grads = grad(loss_of)(params)
    return {
        "loss": loss_of(params),
        **{name: params[name] - lr * grads[name] for name in params},
    }


def _many_ops(x: torch.Tensor, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    two = torch.full_like(x, 2)
    soft = torch.softmax(x, dim=0)
    tall = torch.cat([x, x * two], dim=0).permute(1, 0).transpose(0, 1)
    rows = torch.stack([x[:, 0], x[:, 1]], dim=1)
    picked = x.select(1, 2) + x[1:, ::2].sum() / x.shape[0]
    ratio = torch.where(x > 0, x.abs().sqrt(), x.exp()) / (x.clamp(-0.5, 0.5) + two)
    grown = x.unsqueeze(0).expand(3, -1, -1).squeeze(0)
    return {
        "soft": soft,
        "tall": tall,
        "rows": rows,
        "picked": picked,
        "ratio": ratio.pow(2).reciprocal().rsqrt(),
        "grown": grown.amax(dim=0) - grown.amin(dim=(0, 1)),
        "argmax": x.argmax(dim=1),
        "argmin": x.argmin(),
        "var": x.var(dim=0),
        "max": torch.max(x, dim=1).values,
        "mix": torch.maximum(x, x.t()[:1].t()) - torch.minimum(x, torch.tensor(0.1)),
        "signs": torch.sign(x) * (x != 0.3) * torch.logical_not(x < -1),
        "floor": torch.div(x, two, rounding_mode="floor"),
        "trunc": torch.div(x, two, rounding_mode="trunc"),
        "emb": F.embedding(idx, x.t()),
        "act": F.silu(x) + F.gelu(x) + F.leaky_relu(x, 0.2) + torch.relu(x),
        "mean": x.mean(dim=1, keepdim=True) + (1 - x).mean(),
        "full": torch.zeros_like(x) + torch.ones(x.shape[1]) + torch.full_like(x, 2),
    }


def _training_case(
    model: nn.Module, step: Any, classes: int | None, seed: int
) -> tuple[Plan, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    x = torch.randn(10, 6)
    y = torch.randint(0, classes, (10,)) if classes else torch.randn(10, 3)
    batch = {"x": x, "y": y, "lr": torch.tensor(0.05)}
    plan = trace_training_plan(step, model, batch)
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    return plan, {**params, **batch}


def _cases() -> dict[str, tuple[Plan, dict[str, torch.Tensor]]]:
    torch.manual_seed(5)
    x = torch.randn(5, 4)
    idx = torch.tensor([3, 0, 2])
    generic = trace_plan(
        _many_ops, {"x": x, "idx": idx}, name="many_ops", hyperparameters=["idx"]
    )
    return {
        "digits": _digits_case(),
        "conv": _conv_case(),
        "norm": _training_case(NormNet(), _regression_step, None, 6),
        "nll": _training_case(nn.Linear(6, 3), _weighted_nll_step, 3, 7),
        "many_ops": (generic, {"x": x, "idx": idx}),
    }


def _assert_agrees(
    browser: dict[str, Any], expected: dict[str, torch.Tensor], case: str
) -> None:
    assert set(browser) == set(expected), case
    for name, tensor in expected.items():
        got = browser[name]
        assert got["shape"] == list(tensor.shape), (case, name)
        values = torch.tensor(got["values"], dtype=torch.float64).reshape(tensor.shape)
        if tensor.dtype == torch.bool:
            assert got["dtype"] == "bool", (case, name)
        difference = (values - tensor.to(torch.float64)).abs().max().item()
        assert difference <= TOLERANCE, (case, name, difference)


@pytest.mark.parametrize("backend", ["wasm", "cpu"])
def test_browser_steps_agree_with_pytorch(
    page_server: str, fixtures_dir: Path, backend: str
) -> None:
    cases = _cases()
    for case, (plan, inputs) in cases.items():
        write_case(fixtures_dir, case, plan.to_bytes(), inputs)

    for case, (plan, inputs) in cases.items():
        answer = run_page(f"{page_server}/test/plan.html?case={case}&backend={backend}")

        assert answer["result"]["backend"] == backend
        _assert_agrees(answer["result"]["outputs"], plan.run_with(inputs), case)


def test_untranslatable_op_fails_naming_it(
    page_server: str, fixtures_dir: Path
) -> None:
    torch.manual_seed(0)
    batch = {
        "data": torch.randn(4, 1, 8, 8),
        "target": torch.randint(0, 10, (4,)),
        "lr": torch.tensor(0.1),
    }
    plan = trace_training_plan(sgd_training_step, SmallCNN(), batch)
    write_case(fixtures_dir, "cnn", plan.to_bytes(), batch)

    answer = run_page(f"{page_server}/test/plan.html?case=cnn")

    message = answer["result"]["loadError"]
    opset = load_opset()
    blocked = next(
        node.op
        for node in plan.program.nodes
        if "browser" not in opset.targets_of(node.op)
    )
    assert f"op {blocked}," in message and "TensorFlow.js" in message
    with pytest.raises(PlanError, match=f"op '{blocked}' cannot run on target"):
        plan.validate(["browser"])


def test_int64_values_beyond_int32_are_refused(
    page_server: str, fixtures_dir: Path
) -> None:
    plan, inputs = _digits_case()
    inputs = dict(inputs, target=inputs["target"] + 2**40)
    write_case(fixtures_dir, "too_big", plan.to_bytes(), inputs)

    with pytest.raises(AssertionError, match="does not fit int32"):
        run_page(f"{page_server}/test/plan.html?case=too_big")


def test_no_tensor_leaks_over_1000_steps(page_server: str, fixtures_dir: Path) -> None:
    plan, inputs = _digits_case()
    write_case(fixtures_dir, "leaks", plan.to_bytes(), inputs)

    answer = run_page(f"{page_server}/test/plan.html?case=leaks&steps=1000", 180)

    result = answer["result"]
    before, *during = result["counts"]  # after a warm-up, then every 100 steps
    assert len(during) == 10
    # Only the current parameters live between steps, whatever the step count.
    assert during == [before + len(plan.state_names)] * 10
    assert result["after"] == before
    assert result["metrics"]["loss"] > 0
