"""Generic plans: size arithmetic, constants and hyperparameters at run time."""

from __future__ import annotations

import torch

from fedgrid.plans import InputKind, Plan, load_torchscript, trace_plan


def _regroup(data: torch.Tensor, scale: torch.Tensor) -> dict[str, torch.Tensor]:
    rows = data.shape[0] * data.shape[1]
    flat = data.reshape(rows, -1) * torch.tensor([1.0, 2.0, 3.0])
    return {"rows": flat * scale, "total": flat.sum() + rows}


def test_size_arithmetic_follows_the_batch() -> None:
    plan = Plan.from_bytes(
        trace_plan(_regroup, {"data": torch.randn(3, 2, 3), "scale": 2.0}).to_bytes()
    )
    module = load_torchscript(plan.to_torchscript())

    assert any(op.startswith("sym.") for op in plan.ops)
    assert [spec.kind for spec in plan.inputs] == [
        InputKind.DATA,
        InputKind.HYPERPARAMETER,
    ]
    for size in (1, 4, 9):
        data = torch.randn(size, 2, 3)
        expected = _regroup(data, torch.tensor(0.5))
        result = plan.run(data=data, scale=0.5)
        scripted = module(data, torch.tensor(0.5))
        for name in ("rows", "total"):
            torch.testing.assert_close(result[name], expected[name])
            torch.testing.assert_close(scripted[name], expected[name])
