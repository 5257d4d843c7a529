"""Training-step time of the plan interpreter and TorchScript against eager PyTorch.

For the demo's digits MLP and the small CNN at batch 32, one SGD step
(forward, cross-entropy, gradients, update, loss and accuracy) runs three
ways: eager PyTorch (model call plus torch.autograd.grad), the interpreter
on the traced plan loaded from bytes, and the TorchScript module the grid
exports from that plan. Rounds of the three alternate after a warm-up; each
side's time is its median per-step time over the rounds. The worse ratio of
the two models is reported.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from fedgrid.demo.model import DigitsMLP
from fedgrid.plans import Plan, load_torchscript, trace_training_plan
from fedgrid.plans.examples import SmallCNN, sgd_training_step


def _eager_step(
    model: nn.Module, data: torch.Tensor, target: torch.Tensor, lr: torch.Tensor
) -> Callable[[], object]:
    params = list(model.parameters())

    def step() -> object:
        logits = model(data)
        loss = F.cross_entropy(logits, target)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            accuracy = (logits.argmax(dim=1) == target).float().mean()
            updated = [p - lr * g for p, g in zip(params, grads, strict=True)]
        return loss.detach(), accuracy, updated

    return step


def _per_step(function: Callable[[], object], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        function()
    return (time.perf_counter() - start) / steps


def _measure(
    sides: dict[str, Callable[[], object]], steps: int, rounds: int, warmup: int
) -> dict[str, float]:
    for function in sides.values():
        for _ in range(warmup):
            function()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, function in sides.items():
            times[name].append(_per_step(function, steps))
    return {name: statistics.median(values) for name, values in times.items()}


def bench_model(
    name: str, model: nn.Module, shape: tuple[int, ...], args: argparse.Namespace
) -> tuple[float, float]:
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(args.batch, *shape, generator=generator)
    target = torch.randint(0, 10, (args.batch,), generator=generator)
    lr = torch.tensor(0.1)
    example = {"data": data[:5], "target": target[:5], "lr": lr}
    traced = trace_training_plan(sgd_training_step, model, example, name=name)
    plan = Plan.from_bytes(traced.to_bytes())
    module = load_torchscript(plan.to_torchscript())
    params = {key: value.detach() for key, value in model.named_parameters()}
    inputs = {**params, "data": data, "target": target, "lr": lr}
    positional = list(inputs.values())

    times = _measure(
        {
            "eager": _eager_step(model, data, target, lr),
            "interpreter": lambda: plan.run_with(inputs),
            "torchscript": lambda: module(*positional),
        },
        args.steps,
        args.rounds,
        args.warmup,
    )
    interpreter = times["interpreter"] / times["eager"]
    torchscript = times["torchscript"] / times["eager"]
    size = sum(value.numel() for value in params.values())
    print(
        f"{name}: params={size} eager={times['eager'] * 1e6:.1f}us "
        f"interpreter={times['interpreter'] * 1e6:.1f}us "
        f"torchscript={times['torchscript'] * 1e6:.1f}us "
        f"interpreter_vs_eager={interpreter:.3f} torchscript_vs_eager={torchscript:.3f}"
    )
    return interpreter, torchscript


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    results = [
        bench_model("digits_mlp", DigitsMLP(), (64,), args),
        bench_model("small_cnn", SmallCNN(), (1, 8, 8), args),
    ]
    worst_interpreter = max(result[0] for result in results)
    worst_torchscript = max(result[1] for result in results)
    print(
        f"models=demo_digits_mlp(64-64-10),small_cnn(1x8x8) batch={args.batch} "
        f"threads={args.threads} steps={args.steps} rounds={args.rounds} "
        f"warmup={args.warmup}"
    )
    print(
        f"interpreter_vs_eager={worst_interpreter:.3f} "
        f"torchscript_vs_eager={worst_torchscript:.3f}"
    )


if __name__ == "__main__":
    main()
